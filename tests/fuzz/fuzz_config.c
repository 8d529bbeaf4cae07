/*
 * Fuzz target for configuration loading (core/config.c) and generation building (core/gen.c):
 * the input becomes the only file of a conf.d, which is loaded; a configuration without
 * errors is built into a generation (modules loaded and initialised, stores opened, routes
 * bound) and freed. "@MODULE_DIR@" in the input stands for the build's module directory, so
 * that committed seeds reach mh_gen_build. Checked: no crash, leak or undefined behaviour, and
 * every error carries a message.
 *
 * What may touch the world is not built: a module outside the build's module directory or not
 * in the list below (store_sqlite writes files), and a store with another driver than memory.
 * Inputs that mention libconfig's @include are skipped (it reads any path, /dev/stdin too).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "conf/config.h"
#include "mod/gen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * libconfig before 1.7 leaks a string token that its parser discards while recovering from a
 * syntax error (hyperrealm/libconfig issue 142; Debian 12 has 1.5). Only the lexer allocations
 * of such tokens are ignored: a config_t that modhost forgot to destroy is still reported.
 */
const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\n"
           "leak:libconfig_yylex\n";
}

#ifndef MH_FUZZ_MODULE_DIR
#error "MH_FUZZ_MODULE_DIR must name the build's module directory"
#endif

#define PLACEHOLDER "@MODULE_DIR@"

static const char *const buildable_modules[] = {"hello.so", "echo.so", "hash.so", "kv.so",
                                                "store_memory.so"};

static char conf_dir[] = "/tmp/modhost-fuzz-config-XXXXXX";
static char conf_file[sizeof(conf_dir) + 16];

static void remove_dir(void)
{
    unlink(conf_file);
    rmdir(conf_dir);
}

static void setup(void)
{
    if (!mkdtemp(conf_dir)) {
        perror("fuzz_config: mkdtemp");
        abort();
    }
    snprintf(conf_file, sizeof(conf_file), "%s/00-fuzz.conf", conf_dir);
    atexit(remove_dir);
    mh_log_set_level(MH_LOG_ERROR);
}

static bool mentions_include(const uint8_t *data, size_t size)
{
    static const char word[] = "include";

    for (size_t i = 0; i + sizeof(word) - 1 <= size; i++) {
        if (strncasecmp((const char *)data + i, word, sizeof(word) - 1) == 0)
            return true;
    }
    return false;
}

/* Writes the input with every PLACEHOLDER replaced by the module directory. */
static void write_conf(const uint8_t *data, size_t size)
{
    FILE *f = fopen(conf_file, "wb");
    size_t plen = strlen(PLACEHOLDER), i = 0;

    if (!f) {
        perror("fuzz_config: fopen");
        abort();
    }
    while (i < size) {
        if (size - i >= plen && memcmp(data + i, PLACEHOLDER, plen) == 0) {
            fputs(MH_FUZZ_MODULE_DIR, f);
            i += plen;
        } else {
            fputc(data[i++], f);
        }
    }
    if (fclose(f) != 0) {
        perror("fuzz_config: fclose");
        abort();
    }
}

static bool is_buildable(const struct mh_config *c)
{
    size_t dlen = strlen(MH_FUZZ_MODULE_DIR);

    for (size_t i = 0; i < c->nmodules; i++) {
        const char *path = c->modules[i].path;
        bool known = false;

        if (!path || strncmp(path, MH_FUZZ_MODULE_DIR, dlen) != 0 || path[dlen] != '/')
            return false;
        for (size_t k = 0; k < sizeof(buildable_modules) / sizeof(buildable_modules[0]); k++)
            known = known || strcmp(path + dlen + 1, buildable_modules[k]) == 0;
        if (!known)
            return false;
    }
    for (size_t i = 0; i < c->nstores; i++) {
        if (!c->stores[i].driver || strcmp(c->stores[i].driver, "memory") != 0)
            return false;
    }
    return true;
}

static void check_errors(const struct mh_errlist *errs)
{
    for (size_t i = 0; i < errs->count; i++) {
        if (errs->items[i].msg[0] == '\0') {
            fprintf(stderr, "fuzz_config: error %zu of %zu has no message\n", i, errs->count);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    struct mh_gen *gen = NULL;

    if (!ready) {
        setup();
        ready = true;
    }
    if (mentions_include(data, size))
        return 0;
    write_conf(data, size);
    mh_config_load(conf_dir, &config, &errs);
    check_errors(&errs);
    if (errs.count == 0 && config && is_buildable(config)) {
        mh_gen_build(config, &gen, &errs); /* consumes config */
        config = NULL;
        check_errors(&errs);
        if ((gen != NULL) == (errs.count != 0)) {
            fprintf(stderr, "fuzz_config: mh_gen_build gave %s with %zu errors\n",
                    gen ? "a generation" : "nothing", errs.count);
            abort();
        }
        mh_gen_free(gen);
    }
    mh_config_free(config);
    mh_errlist_cleanup(&errs);
    return 0;
}
