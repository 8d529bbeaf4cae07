// Command gopeer is the Go reference server of the benchmark: net/http from the standard
// library plus gorilla/websocket, written the way a Go service usually is, with no tuning.
//
//	GET  /hello/{name}  {"message":"Hello, NAME!"}
//	POST /echo/json     the request's JSON document, parsed and serialized again
//	GET  /kv/{key}      the stored JSON value, or 404
//	PUT  /kv/{key}      store a JSON value: 201 when created, 200 when replaced
//	                    (in memory, or with -store postgres|redis in a shared store)
//	GET  /ws/echo       WebSocket echo of every text and binary message
//
// Errors are application/problem+json (RFC 9457) documents.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// maxBody bounds request bodies; larger ones get 413.
const maxBody = 1 << 20

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	body, err := json.Marshal(problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	w.Write(body)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeProblem(w, http.StatusMethodNotAllowed, "allowed: "+allow)
}

// pathParam returns the single path segment after prefix, or "" if the path has none or more
// than one segment there.
func pathParam(path, prefix string) string {
	rest := strings.TrimPrefix(path, prefix)
	if rest == path || rest == "" || strings.Contains(rest, "/") {
		return ""
	}
	return rest
}

// readBody reads the whole request body, answering the client itself when that fails.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "request body exceeds 1 MiB")
		} else {
			writeProblem(w, http.StatusBadRequest, "reading request body: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

func handleHello(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	name := pathParam(r.URL.Path, "/hello/")
	if name == "" {
		writeProblem(w, http.StatusNotFound, "no such resource")
		return
	}
	body, err := json.Marshal(struct {
		Message string `json:"message"`
	}{"Hello, " + name + "!"})
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func handleEchoJSON(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	out, err := json.Marshal(doc)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// store is the in-memory key-value store behind /kv/. Values are kept as validated raw JSON.
type store struct {
	mu   sync.RWMutex
	data map[string]json.RawMessage
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := pathParam(r.URL.Path, "/kv/")
	if key == "" {
		writeProblem(w, http.StatusNotFound, "no such resource")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.mu.RLock()
		value, ok := s.data[key]
		s.mu.RUnlock()
		if !ok {
			writeProblem(w, http.StatusNotFound, "no value for key "+key)
			return
		}
		writeJSON(w, http.StatusOK, value)
	case http.MethodPut:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		if !json.Valid(body) {
			writeProblem(w, http.StatusBadRequest, "invalid JSON")
			return
		}
		s.mu.Lock()
		_, existed := s.data[key]
		s.data[key] = json.RawMessage(body)
		s.mu.Unlock()
		if existed {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusCreated)
		}
	default:
		methodNotAllowed(w, "GET, HEAD, PUT")
	}
}

var upgrader = websocket.Upgrader{}

func handleWSEcho(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has already answered the client.
	}
	defer conn.Close()
	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	kvStore := flag.String("store", "memory", "where /kv/ keeps records: memory, postgres or redis")
	pgDSN := flag.String("pg", "", "lib/pq connection string (-store postgres)")
	pgTable := flag.String("pg-table", "gopeer_kv", "table (-store postgres)")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "host:port (-store redis)")
	redisPass := flag.String("redis-password-file", "", "file with the password (-store redis)")
	redisPrefix := flag.String("redis-prefix", "gopeer:", "key prefix (-store redis)")
	conns := flag.Int("conns", 8, "connections to the store (-store postgres or redis)")
	tlsAddr := flag.String("tls-addr", "", "also serve HTTPS on this address (needs -cert and -key)")
	certFile := flag.String("cert", "", "PEM certificate chain (-tls-addr)")
	keyFile := flag.String("key", "", "PEM private key (-tls-addr)")
	flag.Parse()

	var kv http.Handler = &store{data: make(map[string]json.RawMessage)}
	var err error
	switch *kvStore {
	case "memory":
	case "postgres":
		kv, err = newPgStore(*pgDSN, *pgTable, *conns)
	case "redis":
		kv, err = newRedisStore(*redisAddr, *redisPass, *redisPrefix, *conns)
	default:
		log.Fatalf("unknown -store %q", *kvStore)
	}
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/hello/", handleHello)
	mux.HandleFunc("/echo/json", handleEchoJSON)
	mux.Handle("/kv/", kv)
	mux.HandleFunc("/ws/echo", handleWSEcho)

	srv := &http.Server{
		Addr:              *addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}

	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	if *tlsAddr != "" {
		// crypto/tls defaults (TLS 1.2 floor, 1.3 preferred); HTTP/1.1 only, as modhost speaks.
		tsrv := &http.Server{
			Addr:              *tlsAddr,
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		}
		go func() { errc <- tsrv.ListenAndServeTLS(*certFile, *keyFile) }()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	// Hijacked WebSocket connections are not tracked by Shutdown; they end with the process.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Print(err)
	}
}
