// Go programs of the benchmark harness: the Go peer server and the WebSocket load client.
// Builds offline: gorilla/websocket comes from Debian's golang-github-gorilla-websocket-dev,
// and bench/run builds with GOPROXY=off and GOFLAGS=-mod=readonly.
module modhost.local/bench

go 1.19

require github.com/gorilla/websocket v1.5.0

replace github.com/gorilla/websocket => /usr/share/gocode/src/github.com/gorilla/websocket
