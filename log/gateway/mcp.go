package gateway

import "net/http"

func (g *Gateway) serveMCP(w http.ResponseWriter, r *http.Request, rt *route) {
	httpFail(w, http.StatusNotImplemented, "mcp")
}
