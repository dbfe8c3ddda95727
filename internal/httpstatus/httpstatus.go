// Package httpstatus records the status code a handler answers with, for
// the request metrics of agentlog's HTTP servers (the log's and the
// witness's).
package httpstatus

import "net/http"

// Writer is an http.ResponseWriter that remembers the status it sent.
type Writer struct {
	http.ResponseWriter
	Code int // the status sent; 200 until WriteHeader is called
}

// New wraps w.
func New(w http.ResponseWriter) *Writer { return &Writer{ResponseWriter: w, Code: http.StatusOK} }

// WriteHeader records code and sends it.
func (w *Writer) WriteHeader(code int) {
	w.Code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap returns the wrapped writer, so http.ResponseController reaches
// its Flush and deadlines.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
