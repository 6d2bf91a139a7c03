package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mcoad/mcoad/pkg/control"
)

// statusJSON is --json status: the API's object and the diagnoses.
type statusJSON struct {
	control.Status
	Registered bool        `json:"registered"` // with the home agent (or at home): exit status 0
	Diagnoses  []diagnosis `json:"diagnoses"`
}

func (c *cli) status(ctx context.Context) error {
	s, err := c.client.Status(ctx)
	if err != nil {
		return err
	}
	if s.Daemon != control.DaemonMN {
		return emit(c, s, writeStatus)
	}
	bs, err := c.client.Bindings(ctx)
	if err != nil {
		return err
	}
	is, err := c.client.Interfaces(ctx)
	if err != nil {
		return err
	}
	text, err := c.client.Metrics(ctx)
	if err != nil {
		return err
	}
	ds := diagnose(s, bs, is, parseMetrics(text))
	ok := registered(s, bs)
	out := statusJSON{Status: s, Registered: ok, Diagnoses: ds}
	if out.Diagnoses == nil {
		out.Diagnoses = []diagnosis{}
	}
	if err := emit(c, out, writeStatusHealth); err != nil {
		return err
	}
	if !ok {
		return errSilent{exitError}
	}
	return nil
}

// registered: some binding with the home agent is in place, or the node
// is at home and needs none.
func registered(s control.Status, bs []control.Binding) bool {
	if s.AtHome {
		return true
	}
	for _, b := range bs {
		if b.Role == control.RoleHA && isRegistered(b) {
			return true
		}
	}
	return false
}

func isRegistered(b control.Binding) bool { return b.State == "registered" || b.State == "refreshing" }

func writeStatusHealth(w io.Writer, s statusJSON) error {
	if err := writeStatus(w, s.Status); err != nil {
		return err
	}
	switch n := len(s.Diagnoses); n {
	case 0:
		_, err := fmt.Fprintf(w, "\nhealth: ok\n")
		return err
	case 1:
		fmt.Fprintf(w, "\nhealth: 1 problem\n")
	default:
		fmt.Fprintf(w, "\nhealth: %d problems\n", n)
	}
	for _, d := range s.Diagnoses {
		fmt.Fprintf(w, "\n! %s\n", d.Problem)
		if d.Detail != "" {
			io.WriteString(w, wrap(d.Detail, "  ", 78))
		}
		io.WriteString(w, wrap("To do: "+d.Fix, "  ", 78))
	}
	return nil
}

// wrap breaks text into lines of at most width columns, each indented.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		b.WriteString(line + "\n")
	}
	return b.String()
}
