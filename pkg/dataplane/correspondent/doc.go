// Package correspondent is a correspondent node's route-optimised data
// path (Forwarder): type 2 routing headers out, Home Address options in.
package correspondent
