// Go programs of the benchmark harness: the Go peer server and the WebSocket load client.
// Builds offline: gorilla/websocket, lib/pq and redigo come from Debian's
// golang-github-gorilla-websocket-dev, golang-github-lib-pq-dev and
// golang-github-gomodule-redigo-dev (testify and its kin only because redigo's go.mod names them),
// and bench/run builds with GOPROXY=off and GOFLAGS=-mod=readonly.
module modhost.local/bench

go 1.19

require (
	github.com/gomodule/redigo v1.8.9
	github.com/gorilla/websocket v1.5.0
	github.com/lib/pq v1.10.7
)

replace github.com/gorilla/websocket => /usr/share/gocode/src/github.com/gorilla/websocket

replace github.com/lib/pq => /usr/share/gocode/src/github.com/lib/pq

replace github.com/gomodule/redigo => /usr/share/gocode/src/github.com/gomodule/redigo

replace github.com/stretchr/testify => /usr/share/gocode/src/github.com/stretchr/testify

replace github.com/davecgh/go-spew => /usr/share/gocode/src/github.com/davecgh/go-spew

replace github.com/pmezard/go-difflib => /usr/share/gocode/src/github.com/pmezard/go-difflib

replace github.com/stretchr/objx => /usr/share/gocode/src/github.com/stretchr/objx
