/*
 * conf.d loading (core/config.c): every kind of mistake is reported with its file and line and
 * leaves the configuration as it was; a valid directory gives the expected structs, with
 * defaults for absent keys and paths resolved. Also mh_config_parse_listen and the suggestions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "conf/config.h"
#include "conf/schema.h"
#include "mh_test.h"

/* A conf.d in a temporary directory, loaded. */
struct loaded {
    struct mh_test_dir dir;
    struct mh_config *c;
    struct mh_errlist errs;
};

/* Writes the files and loads the directory. */
static void load(struct loaded *l, const struct mh_test_file *files)
{
    memset(l, 0, sizeof(*l));
    mh_test_dir_init(&l->dir);
    mh_test_dir_write_all(&l->dir, files);
    mh_config_load(l->dir.path, &l->c, &l->errs);
}

static void unload(struct loaded *l)
{
    mh_config_free(l->c);
    mh_errlist_cleanup(&l->errs);
    mh_test_dir_cleanup(&l->dir);
}

static void print_errors(const struct mh_errlist *errs)
{
    fprintf(stderr, "\n");
    mh_errlist_print(errs, stderr);
}

/* Error @p i is @p code in dir/@p file (or the directory itself if NULL) at @p line, and its
 * message contains @p needle. */
static void check_error(const struct loaded *l, size_t i, enum mh_status code, const char *file,
                        int line, const char *needle)
{
    char path[512];
    const struct mh_err *e;

    if (i >= l->errs.count) {
        print_errors(&l->errs);
        CU_FAIL("expected error is missing");
        return;
    }
    e = &l->errs.items[i];
    if (file)
        mh_test_dir_path(&l->dir, file, path, sizeof(path));
    else
        snprintf(path, sizeof(path), "%s", l->dir.path);
    CU_ASSERT_EQUAL(e->code, code);
    CU_ASSERT_STRING_EQUAL(e->file, path);
    CU_ASSERT_EQUAL(e->line, line);
    if (!strstr(e->msg, needle) || e->line != line || e->code != code) {
        print_errors(&l->errs);
        fprintf(stderr, "expected line %d with \"%s\"\n", line, needle);
        CU_FAIL("error text");
    }
}

/* The one error of a load is @p code at @p file:@p line and says @p needle. */
static void check_only_error(const struct loaded *l, enum mh_status code, const char *file,
                             int line, const char *needle)
{
    CU_ASSERT_EQUAL(l->errs.count, 1);
    if (l->errs.count != 1)
        print_errors(&l->errs);
    check_error(l, 0, code, file, line, needle);
}

static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n > 0 ? (int)(n > 256 ? 256 : n) : 1;
}

/* The server group is as mh_config_defaults leaves it, except threads (resolved at load). */
static void check_server_defaults(const struct mh_server_conf *s)
{
    struct mh_server_conf d;

    mh_config_defaults(&d);
    CU_ASSERT_STRING_EQUAL(mh_test_str(s->host), d.host);
    CU_ASSERT_EQUAL(s->port, d.port);
    CU_ASSERT_EQUAL(s->threads, cores());
    CU_ASSERT_STRING_EQUAL(mh_test_str(s->module_dir), d.module_dir);
    CU_ASSERT_EQUAL(s->shutdown_timeout_ms, d.shutdown_timeout_ms);
    CU_ASSERT_EQUAL(s->log_level, d.log_level);
    CU_ASSERT_EQUAL(s->access_log, d.access_log);
    CU_ASSERT_EQUAL(memcmp(&s->limits, &d.limits, sizeof(d.limits)), 0);
    free(d.host);
    free(d.module_dir);
}

/* --- Valid directories --- */

static void test_config_defaults_apply_when_keys_are_absent(void)
{
    static const struct mh_test_file files[] = {
        {"hello.conf", "module: { name = \"m1\"; };\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 0);
    CU_ASSERT_STRING_EQUAL(l.c->dir, l.dir.path);
    check_server_defaults(&l.c->server);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->server.host), "127.0.0.1");
    CU_ASSERT_EQUAL(l.c->server.port, 8080);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->server.module_dir), MH_DEFAULT_MODULE_DIR);
    CU_ASSERT_EQUAL(l.c->server.log_level, MH_LOG_INFO);
    CU_ASSERT_EQUAL(l.c->server.limits.max_body_bytes, 1 << 20);
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].name), "m1");
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].path), MH_DEFAULT_MODULE_DIR "/m1.so");
    CU_ASSERT_EQUAL(l.c->modules[0].line, 1);
    CU_ASSERT_PTR_NULL(l.c->modules[0].settings);
    CU_ASSERT_EQUAL(l.c->modules[0].nroutes, 0);
    CU_ASSERT_EQUAL_FATAL(l.c->nfiles, 1);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].file), l.c->files[0]);
    unload(&l);
}

static const char full_server[] = "# every server key\n"
                                  "server: {\n"
                                  "  listen = \"[::1]:9090\";\n"
                                  "  threads = 3;\n"
                                  "  module_dir = \"../lib/mods\";\n"
                                  "  shutdown_timeout_ms = 1500;\n"
                                  "  log: { level = \"debug\"; access = false; };\n"
                                  "  limits: {\n"
                                  "    max_header_bytes = 4096;\n"
                                  "    max_body_bytes = 10;\n"
                                  "    max_json_bytes = 11;\n"
                                  "    max_json_depth = 12;\n"
                                  "    read_timeout_ms = 13;\n"
                                  "    write_timeout_ms = 14;\n"
                                  "    keepalive_timeout_ms = 15;\n"
                                  "  };\n"
                                  "};\n";

static const char full_module[] =
    "module: {\n"
    "  name = \"shop\";\n"
    "  file = \"x/shop-v2.so\";\n"
    "  settings: { currency = \"EUR\"; };\n"
    "  routes = (\n"
    "    { method = \"GET\"; path = \"/items\"; handler = \"list\"; },\n"
    "    { method = \"DELETE\"; path = \"/items/{id}\"; handler = \"remove\"; }\n"
    "  );\n"
    "};\n";

static void test_config_valid_dir_gives_the_expected_structs(void)
{
    static const struct mh_test_file files[] = {
        {"00-server.conf", full_server},
        {"20-shop.conf", full_module},
        {"10-abs.conf", "module: { name = \"abs\"; file = \"/opt/abs.so\"; };\n"},
        {"README", "not a .conf file: ignored"},
        {NULL, NULL},
    };
    struct loaded l;
    char path[512], expect[600];
    const struct mh_module_conf *m;
    const struct mh_server_conf *s;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 0);
    if (l.errs.count)
        print_errors(&l.errs);
    s = &l.c->server;
    CU_ASSERT_STRING_EQUAL(mh_test_str(s->host), "::1");
    CU_ASSERT_EQUAL(s->port, 9090);
    CU_ASSERT_EQUAL(s->threads, 3);
    snprintf(expect, sizeof(expect), "%s/../lib/mods", l.dir.path);
    CU_ASSERT_STRING_EQUAL(mh_test_str(s->module_dir), expect);
    CU_ASSERT_EQUAL(s->shutdown_timeout_ms, 1500);
    CU_ASSERT_EQUAL(s->log_level, MH_LOG_DEBUG);
    CU_ASSERT_FALSE(s->access_log);
    CU_ASSERT_EQUAL(s->limits.max_header_bytes, 4096);
    CU_ASSERT_EQUAL(s->limits.max_body_bytes, 10);
    CU_ASSERT_EQUAL(s->limits.max_json_bytes, 11);
    CU_ASSERT_EQUAL(s->limits.max_json_depth, 12);
    CU_ASSERT_EQUAL(s->limits.read_timeout_ms, 13);
    CU_ASSERT_EQUAL(s->limits.write_timeout_ms, 14);
    CU_ASSERT_EQUAL(s->limits.keepalive_timeout_ms, 15);

    /* Files in name order; modules in the order of their files. */
    CU_ASSERT_EQUAL_FATAL(l.c->nfiles, 3);
    CU_ASSERT_STRING_EQUAL(l.c->files[0],
                           mh_test_dir_path(&l.dir, "00-server.conf", path, sizeof(path)));
    CU_ASSERT_STRING_EQUAL(l.c->files[1],
                           mh_test_dir_path(&l.dir, "10-abs.conf", path, sizeof(path)));
    CU_ASSERT_STRING_EQUAL(l.c->files[2],
                           mh_test_dir_path(&l.dir, "20-shop.conf", path, sizeof(path)));
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 2);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].name), "abs");
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].path), "/opt/abs.so");

    m = &l.c->modules[1];
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->name), "shop");
    snprintf(expect, sizeof(expect), "%s/../lib/mods/x/shop-v2.so", l.dir.path);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->path), expect);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->file), l.c->files[2]);
    CU_ASSERT_EQUAL(m->line, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->settings);
    CU_ASSERT_STRING_EQUAL(mh_config_setting_file(m->settings), l.c->files[2]);
    CU_ASSERT_STRING_EQUAL(
        config_setting_get_string(config_setting_get_member(m->settings, "currency")), "EUR");
    CU_ASSERT_EQUAL_FATAL(m->nroutes, 2);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->routes[0].method), "GET");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->routes[0].path), "/items");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->routes[0].handler), "list");
    CU_ASSERT_EQUAL(m->routes[0].line, 6);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->routes[0].file), l.c->files[2]);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->routes[1].method), "DELETE");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->routes[1].path), "/items/{id}");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->routes[1].handler), "remove");
    CU_ASSERT_EQUAL(m->routes[1].line, 7);
    unload(&l);
}

static void test_config_module_dir_absolute_and_threads_zero(void)
{
    static const struct mh_test_file files[] = {
        {"a.conf", "server: { module_dir = \"/srv/mods\"; threads = 0; listen = \"0.0.0.0:0\"; };\n"
                   "module: { name = \"m\"; };\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 0);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->server.module_dir), "/srv/mods");
    CU_ASSERT_EQUAL(l.c->server.threads, cores());
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->server.host), "0.0.0.0");
    CU_ASSERT_EQUAL(l.c->server.port, 0);
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].path), "/srv/mods/m.so");
    unload(&l);
}

/* --- File-level errors --- */

static void test_config_reports_syntax_errors_with_line(void)
{
    static const struct mh_test_file files[] = {
        {"10-bad.conf", "# comment\nserver: {\n  threads = = 4;\n};\n"},
        {"20-ok.conf", "module: { name = \"still_read\"; };\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    check_only_error(&l, MH_E_INVAL, "10-bad.conf", 3, "syntax error");
    check_server_defaults(&l.c->server);
    /* The other files are still read, so one run reports everything. */
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].name), "still_read");
    unload(&l);
}

static void test_config_empty_and_missing_directories(void)
{
    struct mh_test_dir d;
    struct mh_errlist errs = {0};
    struct mh_config *c = NULL;
    char path[512];

    mh_test_dir_init(&d);
    mh_test_dir_write(&d, "README", "ignored");
    mh_test_dir_write(&d, ".hidden.conf", "server: { threads = 1; };");
    mh_test_dir_write(&d, "old.conf.bak", "server: { threads = 1; };");
    mh_test_dir_mkdir(&d, "sub.conf"); /* a directory, not a file */
    mh_config_load(d.path, &c, &errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(errs.count, 1);
    CU_ASSERT_EQUAL(errs.items[0].code, MH_E_NOTFOUND);
    CU_ASSERT_STRING_EQUAL(errs.items[0].file, d.path);
    CU_ASSERT_EQUAL(errs.items[0].line, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(errs.items[0].msg, "no *.conf files"));
    CU_ASSERT_EQUAL(c->nfiles, 0);
    CU_ASSERT_EQUAL(c->nmodules, 0);
    CU_ASSERT_STRING_EQUAL(c->server.host, "127.0.0.1");
    CU_ASSERT_EQUAL(c->server.port, 8080);
    mh_config_free(c);
    mh_errlist_cleanup(&errs);

    c = NULL;
    mh_config_load(mh_test_dir_path(&d, "missing", path, sizeof(path)), &c, &errs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(errs.count, 1);
    CU_ASSERT_EQUAL(errs.items[0].code, MH_E_IO);
    CU_ASSERT_STRING_EQUAL(errs.items[0].file, path);
    CU_ASSERT_PTR_NOT_NULL(strstr(errs.items[0].msg, "cannot open configuration directory"));
    CU_ASSERT_PTR_NOT_NULL(strstr(errs.items[0].msg, "No such file or directory"));
    CU_ASSERT_EQUAL(c->nfiles, 0);
    mh_config_free(c);
    mh_errlist_cleanup(&errs);
    mh_test_dir_cleanup(&d);
}

/* --- Keys --- */

static void test_config_unknown_key_with_suggestion(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n  thraeds = 4;\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    check_only_error(&l, MH_E_INVAL, "s.conf", 2,
                     "unknown key 'server.thraeds' (did you mean 'threads'?)");
    check_server_defaults(&l.c->server);
    unload(&l);
}

static void test_config_unknown_keys_at_every_level(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf",
         "modul: { name = \"x\"; };\n"
         "server: {\n"
         "  limits: { max_body_byte = 5; };\n"
         "  log: { levle = \"warn\"; };\n"
         "};\n"
         "module: {\n"
         "  name = \"m\";\n"
         "  routes = ( { method = \"GET\"; path = \"/\"; handler = \"h\"; hander = \"x\"; } );\n"
         "};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 4);
    check_error(&l, 0, MH_E_INVAL, "s.conf", 1, "unknown key 'modul' (did you mean 'module'?)");
    check_error(&l, 1, MH_E_INVAL, "s.conf", 3,
                "unknown key 'server.limits.max_body_byte' (did you mean 'max_body_bytes'?)");
    check_error(&l, 2, MH_E_INVAL, "s.conf", 4,
                "unknown key 'server.log.levle' (did you mean 'level'?)");
    check_error(&l, 3, MH_E_INVAL, "s.conf", 8,
                "unknown key 'module.routes[0].hander' (did you mean 'handler'?)");
    check_server_defaults(&l.c->server);
    unload(&l);
}

static void test_config_unknown_key_lists_valid_keys(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "\nserver: {\n  colour = \"red\";\n};\n"},
        {NULL, NULL},
    };
    static const char *const keys[] = {"listen", "threads", "module_dir", "shutdown_timeout_ms",
                                       "log",    "limits"};
    struct loaded l;

    load(&l, files);
    check_only_error(&l, MH_E_INVAL, "s.conf", 3,
                     "unknown key 'server.colour' (valid keys: listen, threads, ");
    for (size_t i = 0; l.errs.count == 1 && i < sizeof(keys) / sizeof(keys[0]); i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(l.errs.items[0].msg, keys[i]));
    check_server_defaults(&l.c->server);
    unload(&l);
}

static void test_config_wrong_types(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n"
                   "  threads = \"4\";\n"
                   "  listen = 8080;\n"
                   "  log: { access = \"yes\"; };\n"
                   "  limits = 5;\n"
                   "};\n"
                   "module: { name = \"m\"; routes = \"none\"; settings = 3; };\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 6);
    check_error(&l, 0, MH_E_INVAL, "s.conf", 2,
                "'server.threads' must be an integer, not a string");
    check_error(&l, 1, MH_E_INVAL, "s.conf", 3, "'server.listen' must be a string, not an integer");
    check_error(&l, 2, MH_E_INVAL, "s.conf", 4,
                "'server.log.access' must be a boolean (true or false), not a string");
    check_error(&l, 3, MH_E_INVAL, "s.conf", 5,
                "'server.limits' must be a group { ... }, not an integer");
    check_error(&l, 4, MH_E_INVAL, "s.conf", 7,
                "'module.routes' must be a list of groups ( { ... }, ... ), not a string");
    check_error(&l, 5, MH_E_INVAL, "s.conf", 7, "'module.settings' must be a group { ... }");
    check_server_defaults(&l.c->server);
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_EQUAL(l.c->modules[0].nroutes, 0);
    CU_ASSERT_PTR_NULL(l.c->modules[0].settings);
    unload(&l);
}

static void test_config_route_must_be_a_group(void)
{
    static const struct mh_test_file files[] = {
        {"m.conf", "module: {\n  name = \"m\";\n  routes = (\n    \"GET /\",\n"
                   "    { method = \"GET\"; path = \"/ok\"; handler = \"h\"; }\n  );\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    check_only_error(&l, MH_E_INVAL, "m.conf", 4,
                     "'module.routes[0]' must be a group { ... }, not a string");
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_EQUAL_FATAL(l.c->modules[0].nroutes, 1);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].routes[0].path), "/ok");
    unload(&l);
}

static void test_config_out_of_range(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n  threads = 257;\n  limits: { max_header_bytes = 255; };\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 2);
    check_error(&l, 0, MH_E_INVAL, "s.conf", 2, "'server.threads' = 257 is out of range 0..256");
    check_error(&l, 1, MH_E_INVAL, "s.conf", 3,
                "'server.limits.max_header_bytes' = 255 is out of range 256..1048576");
    unload(&l);
}

static void test_config_bad_listen_value(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n  listen = \"localhost\";\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    check_only_error(&l, MH_E_INVAL, "s.conf", 2,
                     "'server.listen' = \"localhost\" is not HOST:PORT");
    check_server_defaults(&l.c->server);
    unload(&l);
}

static void test_config_bad_log_level(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n  log: {\n    level = \"loud\";\n  };\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    check_only_error(&l, MH_E_INVAL, "s.conf", 3,
                     "'server.log.level' = \"loud\" is not one of error, warn, info, debug");
    CU_ASSERT_EQUAL(l.c->server.log_level, MH_LOG_INFO);
    unload(&l);
}

static void test_config_server_group_given_twice(void)
{
    static const struct mh_test_file files[] = {
        {"10-a.conf", "# first\nserver: { threads = 2; };\n"},
        {"20-b.conf", "server: { threads = 3; };\n"},
        {NULL, NULL},
    };
    struct loaded l;
    char first[512], where[600];

    load(&l, files);
    mh_test_dir_path(&l.dir, "10-a.conf", first, sizeof(first));
    snprintf(where, sizeof(where), "server settings are already given at %s:2", first);
    check_only_error(&l, MH_E_INVAL, "20-b.conf", 1, where);
    CU_ASSERT_EQUAL(l.c->server.threads, 2);
    unload(&l);
}

/* --- Modules and routes --- */

static void test_config_duplicate_module_names_the_first_location(void)
{
    static const struct mh_test_file files[] = {
        {"10-a.conf", "\n\nmodule: { name = \"dup\"; file = \"first.so\"; };\n"},
        {"20-b.conf", "module: {\n  name = \"dup\";\n  file = \"second.so\";\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;
    char first[512], where[600];

    load(&l, files);
    mh_test_dir_path(&l.dir, "10-a.conf", first, sizeof(first));
    snprintf(where, sizeof(where), "module 'dup' is already enabled at %s:3", first);
    check_only_error(&l, MH_E_INVAL, "20-b.conf", 2, where);
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.c->modules[0].path, "/first.so"));
    unload(&l);
}

static void test_config_instances_enable_a_module_twice(void)
{
    static const struct mh_test_file files[] = {
        {"10-a.conf", "module: { name = \"kv\"; };\n"},
        {"20-b.conf", "module: {\n  name = \"kv\";\n  instance = \"kv2\";\n};\n"},
        {"30-c.conf", "module: {\n  name = \"echo\";\n  instance = \"kv2\";\n};\n"},
        {"40-d.conf", "module: {\n  name = \"kv\";\n  instance = \"Bad-Name\";\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;
    char first[512], where[600];

    load(&l, files);
    CU_ASSERT_EQUAL_FATAL(l.errs.count, 2);
    mh_test_dir_path(&l.dir, "20-b.conf", first, sizeof(first));
    snprintf(where, sizeof(where), "instance 'kv2' is already enabled at %s:1", first);
    check_error(&l, 0, MH_E_INVAL, "30-c.conf", 3, where);
    check_error(&l, 1, MH_E_INVAL, "40-d.conf", 3,
                "instance name \"Bad-Name\" must match [a-z0-9_]+");
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 2);
    CU_ASSERT_STRING_EQUAL(l.c->modules[0].name, "kv");
    CU_ASSERT_STRING_EQUAL(l.c->modules[0].instance, "kv"); /* the name when not given */
    CU_ASSERT_STRING_EQUAL(l.c->modules[1].name, "kv");
    CU_ASSERT_STRING_EQUAL(l.c->modules[1].instance, "kv2");
    CU_ASSERT_PTR_NOT_NULL(strstr(l.c->modules[1].path, "/kv.so"));
    unload(&l);
}

static void test_config_enabling_a_module_twice_suggests_an_instance(void)
{
    static const struct mh_test_file files[] = {
        {"10-a.conf", "module: { name = \"kv\"; };\n"},
        {"20-b.conf", "module: { name = \"kv\"; };\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL_FATAL(l.errs.count, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(l.errs.items[0].msg, "give each entry its own 'instance'"));
    unload(&l);
}

/* The longest module name there may be: 64 characters. */
#define NAME_64 "abcdefghijklmnopqrstuvwxyz_0123456789_abcdefghijklmnopqrstuvwxyz"

static void test_config_bad_module_names(void)
{
    static const struct mh_test_file files[] = {
        {"a.conf", "module: {\n  name = \"Bad-Name\";\n};\n"},
        {"b.conf", "module: {\n  name = \"\";\n};\n"},
        {"c.conf", "module: {\n  name = \"" NAME_64 "x\";\n};\n"},
        {"d.conf", "module: {\n  file = \"x.so\";\n};\n"},
        {"e.conf", "module: {\n  name = \"" NAME_64 "\";\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 4);
    check_error(&l, 0, MH_E_INVAL, "a.conf", 2,
                "module name \"Bad-Name\" must match [a-z0-9_]+ (at most 64 characters)");
    check_error(&l, 1, MH_E_INVAL, "b.conf", 2, "module name \"\" must match");
    check_error(&l, 2, MH_E_INVAL, "c.conf", 2, "must match [a-z0-9_]+ (at most 64 characters)");
    check_error(&l, 3, MH_E_INVAL, "d.conf", 1, "module has no 'name'");
    /* 64 characters is still a name. */
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_EQUAL(strlen(l.c->modules[0].name), 64);
    unload(&l);
}

static void test_config_route_missing_keys(void)
{
    static const struct mh_test_file files[] = {
        {"m.conf", "module: {\n"
                   "  name = \"m\";\n"
                   "  routes = (\n"
                   "    { method = \"GET\"; path = \"/x\"; },\n"
                   "    { method = \"GET\"; path = \"/ok\"; handler = \"h\"; },\n"
                   "    { handler = \"h\"; }\n"
                   "  );\n"
                   "};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 3);
    check_error(&l, 0, MH_E_INVAL, "m.conf", 4, "route in module 'm' has no 'handler'");
    check_error(&l, 1, MH_E_INVAL, "m.conf", 6, "route in module 'm' has no 'method'");
    check_error(&l, 2, MH_E_INVAL, "m.conf", 6, "route in module 'm' has no 'path'");
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_EQUAL_FATAL(l.c->modules[0].nroutes, 1); /* only the good route */
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->modules[0].routes[0].path), "/ok");
    CU_ASSERT_EQUAL(l.c->modules[0].routes[0].line, 5);
    unload(&l);
}

static void test_config_route_bad_method_and_path(void)
{
    static const struct mh_test_file files[] = {
        {"m.conf", "module: {\n"
                   "  name = \"m\";\n"
                   "  routes = (\n"
                   "    { method = \"FETCH\"; path = \"/x\"; handler = \"h\"; },\n"
                   "    {\n"
                   "      method = \"GET\";\n"
                   "      path = \"users/{id}\";\n"
                   "      handler = \"h\";\n"
                   "    },\n"
                   "    { method = \"GET\"; path = \"/a/{x}/{x}\"; handler = \"h\"; }\n"
                   "  );\n"
                   "};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 3);
    check_error(&l, 0, MH_E_INVAL, "m.conf", 4,
                "route method \"FETCH\" is not one of GET, HEAD, POST, PUT, DELETE, PATCH, "
                "OPTIONS");
    check_error(&l, 1, MH_E_INVAL, "m.conf", 7, "path 'users/{id}' must start with '/'");
    check_error(&l, 2, MH_E_INVAL, "m.conf", 10, "parameter 'x' appears twice");
    CU_ASSERT_EQUAL_FATAL(l.c->nmodules, 1);
    CU_ASSERT_EQUAL(l.c->modules[0].nroutes, 0);
    unload(&l);
}

static void test_config_collects_every_error_of_a_file(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf",
         "server: {\n  threads = \"2\";\n  listen = \"nowhere\";\n  lisen = \"x:1\";\n};\n"
         "module: { name = \"OK?\"; };\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 4);
    check_error(&l, 0, MH_E_INVAL, "s.conf", 2, "'server.threads' must be an integer");
    check_error(&l, 1, MH_E_INVAL, "s.conf", 4, "did you mean 'listen'?");
    check_error(&l, 2, MH_E_INVAL, "s.conf", 3, "is not HOST:PORT");
    check_error(&l, 3, MH_E_INVAL, "s.conf", 6, "module name \"OK?\"");
    unload(&l);
}

/* --- Helpers --- */

static void expect_listen(const char *s, const char *host, int port)
{
    char *h = NULL;
    int p = -1;

    CU_ASSERT_EQUAL(mh_config_parse_listen(s, &h, &p), MH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_STRING_EQUAL(h, host);
    CU_ASSERT_EQUAL(p, port);
    free(h);
}

static void expect_bad_listen(const char *s)
{
    char *h = NULL;
    int p = -1;

    if (mh_config_parse_listen(s, &h, &p) != MH_E_INVAL) {
        fprintf(stderr, "\nlisten \"%s\" was accepted\n", s);
        CU_FAIL("bad listen value accepted");
    }
    CU_ASSERT_PTR_NULL(h);
    CU_ASSERT_EQUAL(p, -1);
    free(h);
}

static void test_config_parse_listen(void)
{
    expect_listen("127.0.0.1:8080", "127.0.0.1", 8080);
    expect_listen("localhost:0", "localhost", 0);
    expect_listen("0.0.0.0:65535", "0.0.0.0", 65535);
    expect_listen("[::1]:8080", "::1", 8080);
    expect_listen("[::]:1", "::", 1);
    expect_listen("[fe80::1%eth0]:80", "fe80::1%eth0", 80);

    expect_bad_listen("localhost");
    expect_bad_listen(":8080");
    expect_bad_listen("host:");
    expect_bad_listen("host:65536");
    expect_bad_listen("host:-1");
    expect_bad_listen("host:+80");
    expect_bad_listen("host: 80");
    expect_bad_listen("host:80x");
    expect_bad_listen("host:99999999999999999999");
    expect_bad_listen("::1:80");
    expect_bad_listen("[::1]8080");
    expect_bad_listen("[::1]:");
    expect_bad_listen("[::1]:x");
    expect_bad_listen("[]:80");
    expect_bad_listen("[::1");
    expect_bad_listen("");
}

static const char *suggest(const char *key, size_t n)
{
    static const char *const keys[] = {"listen", "threads", "module_dir", "shutdown_timeout_ms",
                                       "log",    "limits"};
    const char *s = mh_config_suggest(key, keys, n < 6 ? n : 6);

    return s ? s : "(none)";
}

static void test_config_suggest(void)
{
    CU_ASSERT_STRING_EQUAL(suggest("thraeds", 6), "threads");
    CU_ASSERT_STRING_EQUAL(suggest("threads", 6), "threads");
    CU_ASSERT_STRING_EQUAL(suggest("lisen", 6), "listen");
    CU_ASSERT_STRING_EQUAL(suggest("module-dir", 6), "module_dir");
    CU_ASSERT_STRING_EQUAL(suggest("lg", 6), "log");
    CU_ASSERT_STRING_EQUAL(suggest("shutdown_timeout", 6), "shutdown_timeout_ms");
    CU_ASSERT_STRING_EQUAL(suggest("colour", 6), "(none)");
    CU_ASSERT_STRING_EQUAL(suggest("x", 6), "(none)");
    CU_ASSERT_STRING_EQUAL(suggest("threads", 0), "(none)");
    CU_ASSERT_STRING_EQUAL(
        suggest("a_key_longer_than_anything_the_distance_table_can_hold_at_all", 6), "(none)");
}

static void test_config_free_null(void)
{
    mh_config_free(NULL);
}

static void test_config_listeners_plain_and_tls(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf",
         "server: {\n  insecure_permissions = true;\n  listeners = (\n"
         "    { listen = \"127.0.0.1:8080\"; },\n"
         "    { listen = \"[::]:8443\"; tls: { certificate = \"c.pem\"; key = \"/k.pem\";\n"
         "      min_protocol = \"TLSv1.3\"; session_tickets = false;\n"
         "      sni = ( { certificate = \"/o.pem\"; key = \"/o.key\"; } ); }; }\n"
         "  );\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;
    const struct mh_tls_conf *t;
    char cert[512];

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 0);
    CU_ASSERT_EQUAL_FATAL(l.c->server.nlisteners, 2);
    /* The first listener is server.host:port, which --listen overrides. */
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->server.host), "127.0.0.1");
    CU_ASSERT_EQUAL(l.c->server.port, 8080);
    CU_ASSERT_PTR_NULL(l.c->server.listeners[0].tls);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->server.listeners[1].host), "::");
    CU_ASSERT_EQUAL(l.c->server.listeners[1].port, 8443);
    t = l.c->server.listeners[1].tls;
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    mh_test_dir_path(&l.dir, "c.pem", cert, sizeof(cert)); /* relative to its file */
    CU_ASSERT_STRING_EQUAL(mh_test_str(t->cert.certificate), cert);
    CU_ASSERT_STRING_EQUAL(mh_test_str(t->cert.key), "/k.pem");
    CU_ASSERT_EQUAL(t->min_protocol, 0x0304);
    CU_ASSERT_FALSE(t->session_tickets);
    CU_ASSERT_EQUAL(t->ticket_key_rotate_s, 3600);
    CU_ASSERT_EQUAL_FATAL(t->nsni, 1);
    CU_ASSERT_STRING_EQUAL(mh_test_str(t->sni[0].key), "/o.key");
    unload(&l);
}

static void test_config_listen_alone_is_one_plain_listener(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n  listen = \"10.0.0.1:81\";\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 0);
    CU_ASSERT_EQUAL_FATAL(l.c->server.nlisteners, 1);
    CU_ASSERT_STRING_EQUAL(mh_test_str(l.c->server.listeners[0].host), "10.0.0.1");
    CU_ASSERT_EQUAL(l.c->server.listeners[0].port, 81);
    CU_ASSERT_PTR_NULL(l.c->server.listeners[0].tls);
    unload(&l);
}

static void test_config_listener_mistakes(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n  insecure_permissions = true;\n  listeners = (\n"
                   "    { listen = \"127.0.0.1:1\"; tls: { certificate = \"/c\"; }; },\n"
                   "    { listen = \"127.0.0.1:2\"; tls: { certificate = \"/c\"; key = \"/k\";\n"
                   "      min_protocol = \"TLSv1.1\"; }; },\n"
                   "    { listen = \"127.0.0.1:2\"; }\n"
                   "  );\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    CU_ASSERT_EQUAL(l.errs.count, 3);
    check_error(&l, 0, MH_E_INVAL, "s.conf", 4, "needs a 'certificate'");
    check_error(&l, 1, MH_E_INVAL, "s.conf", 6, "'server.listeners[1].tls.min_protocol'");
    check_error(&l, 2, MH_E_INVAL, "s.conf", 7, "is already a listener at");
    unload(&l);
}

static void test_config_listen_and_listeners_conflict(void)
{
    static const struct mh_test_file files[] = {
        {"s.conf", "server: {\n  listen = \"127.0.0.1:1\";\n"
                   "  listeners = ( { listen = \"127.0.0.1:2\"; } );\n};\n"},
        {NULL, NULL},
    };
    struct loaded l;

    load(&l, files);
    check_only_error(&l, MH_E_INVAL, "s.conf", 3, "either 'server.listen'");
    unload(&l);
}

static const struct mh_test_case config_tests[] = {
    {"listeners plain and tls", test_config_listeners_plain_and_tls},
    {"listen alone is one plain listener", test_config_listen_alone_is_one_plain_listener},
    {"listener mistakes", test_config_listener_mistakes},
    {"listen and listeners conflict", test_config_listen_and_listeners_conflict},
    {"defaults apply when keys are absent", test_config_defaults_apply_when_keys_are_absent},
    {"valid dir gives the expected structs", test_config_valid_dir_gives_the_expected_structs},
    {"module dir absolute and threads zero", test_config_module_dir_absolute_and_threads_zero},
    {"reports syntax errors with line", test_config_reports_syntax_errors_with_line},
    {"empty and missing directories", test_config_empty_and_missing_directories},
    {"unknown key with suggestion", test_config_unknown_key_with_suggestion},
    {"unknown keys at every level", test_config_unknown_keys_at_every_level},
    {"unknown key lists valid keys", test_config_unknown_key_lists_valid_keys},
    {"wrong types", test_config_wrong_types},
    {"route must be a group", test_config_route_must_be_a_group},
    {"out of range", test_config_out_of_range},
    {"bad listen value", test_config_bad_listen_value},
    {"bad log level", test_config_bad_log_level},
    {"server group given twice", test_config_server_group_given_twice},
    {"duplicate module names the first location",
     test_config_duplicate_module_names_the_first_location},
    {"bad module names", test_config_bad_module_names},
    {"instances enable a module twice", test_config_instances_enable_a_module_twice},
    {"enabling a module twice suggests an instance",
     test_config_enabling_a_module_twice_suggests_an_instance},
    {"route missing keys", test_config_route_missing_keys},
    {"route bad method and path", test_config_route_bad_method_and_path},
    {"collects every error of a file", test_config_collects_every_error_of_a_file},
    {"parse listen", test_config_parse_listen},
    {"suggest", test_config_suggest},
    {"free null", test_config_free_null},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "config", config_tests);
}
