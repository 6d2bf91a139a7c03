package nm

import (
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Connect opens a private connection to the bus at address, or to the
// system bus ($DBUS_SYSTEM_BUS_ADDRESS, else the standard socket) when
// address is empty. The caller closes it.
func Connect(address string) (*dbus.Conn, error) {
	var (
		conn *dbus.Conn
		err  error
	)
	if address == "" {
		conn, err = dbus.ConnectSystemBus()
	} else {
		conn, err = dbus.Connect(address)
	}
	if err != nil {
		where := address
		if where == "" {
			where = "system bus"
		}
		return nil, fmt.Errorf("nm: connect to %s: %w", where, err)
	}
	return conn, nil
}
