// The /kv/ handlers over shared stores, for the benchmark's PostgreSQL and Redis runs: the
// same records and versions modhost's postgres and redis drivers keep (one table and a
// version sequence; a hash per record, a key index and a counter, written by one Lua
// script), through database/sql with lib/pq and a redigo pool, as a Go service would.
package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	_ "github.com/lib/pq"
)

type pgStore struct {
	get, put *sql.Stmt
}

func newPgStore(dsn, table string, conns int) (*pgStore, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	q := func(s string) string { return strings.ReplaceAll(s, "@T", table) }
	if _, err := db.Exec(q(`CREATE TABLE IF NOT EXISTS "@T" (k bytea PRIMARY KEY, v bytea NOT NULL,
		ver bigint NOT NULL); CREATE SEQUENCE IF NOT EXISTS "@T_ver"`)); err != nil {
		return nil, err
	}
	s := &pgStore{}
	if s.get, err = db.Prepare(q(`SELECT v, ver FROM "@T" WHERE k = $1`)); err != nil {
		return nil, err
	}
	s.put, err = db.Prepare(q(`INSERT INTO "@T" AS r (k, v, ver) VALUES ($1, $2, nextval('"@T_ver"'))
		ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, ver = EXCLUDED.ver RETURNING r.ver, r.xmax = 0`))
	return s, err
}

func (s *pgStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := pathParam(r.URL.Path, "/kv/")
	if key == "" {
		writeProblem(w, http.StatusNotFound, "no such resource")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		var v []byte
		var ver int64
		err := s.get.QueryRowContext(r.Context(), []byte(key)).Scan(&v, &ver)
		if err == sql.ErrNoRows {
			writeProblem(w, http.StatusNotFound, "no value for key "+key)
			return
		} else if err != nil {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		w.Header().Set("ETag", `"`+strconv.FormatInt(ver, 10)+`"`)
		writeJSON(w, http.StatusOK, v)
	case http.MethodPut:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		if !json.Valid(body) {
			writeProblem(w, http.StatusBadRequest, "invalid JSON")
			return
		}
		var ver int64
		var created bool
		if err := s.put.QueryRowContext(r.Context(), []byte(key), body).Scan(&ver, &created); err != nil {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		w.Header().Set("ETag", `"`+strconv.FormatInt(ver, 10)+`"`)
		writeJSON(w, status, []byte(fmt.Sprintf(`{"key":%q,"version":%d}`, key, ver)))
	default:
		methodNotAllowed(w, "GET, HEAD, PUT")
	}
}

// The write script of modhost's redis driver, for an unconditional put.
var redisPut = redis.NewScript(3, `
local cur = redis.call('HGET', KEYS[1], 'ver')
local v = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', v)
if not cur then redis.call('ZADD', KEYS[3], 0, ARGV[2]) end
return {1, v, cur and 0 or 1}`)

type redisStore struct {
	pool   *redis.Pool
	prefix string
}

func newRedisStore(addr, passwordFile, prefix string, conns int) (*redisStore, error) {
	password := ""
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, err
		}
		password = strings.SplitN(string(b), "\n", 2)[0]
	}
	pool := &redis.Pool{
		MaxIdle:     conns,
		MaxActive:   conns,
		Wait:        true,
		IdleTimeout: time.Minute,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr, redis.DialPassword(password))
		},
	}
	return &redisStore{pool: pool, prefix: prefix}, nil
}

func (s *redisStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := pathParam(r.URL.Path, "/kv/")
	if key == "" {
		writeProblem(w, http.StatusNotFound, "no such resource")
		return
	}
	c := s.pool.Get()
	defer c.Close()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		vals, err := redis.ByteSlices(c.Do("HMGET", s.prefix+"r:"+key, "v", "ver"))
		if err != nil {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if len(vals) != 2 || vals[1] == nil {
			writeProblem(w, http.StatusNotFound, "no value for key "+key)
			return
		}
		w.Header().Set("ETag", `"`+string(vals[1])+`"`)
		writeJSON(w, http.StatusOK, vals[0])
	case http.MethodPut:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		if !json.Valid(body) {
			writeProblem(w, http.StatusBadRequest, "invalid JSON")
			return
		}
		res, err := redis.Values(redisPut.Do(c, s.prefix+"r:"+key, s.prefix+"ver", s.prefix+"idx", body, key))
		if err != nil || len(res) != 3 {
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusServiceUnavailable, fmt.Sprint(err))
			return
		}
		ver, _ := redis.String(res[1], nil)
		created, _ := redis.Int(res[2], nil)
		status := http.StatusOK
		if created == 1 {
			status = http.StatusCreated
		}
		w.Header().Set("ETag", `"`+ver+`"`)
		writeJSON(w, status, []byte(fmt.Sprintf(`{"key":%q,"version":%s}`, key, ver)))
	default:
		methodNotAllowed(w, "GET, HEAD, PUT")
	}
}
