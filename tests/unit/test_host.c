/*
 * The core as modules see it (core/host.c): the 1.0 function table, settings look-ups over a
 * libconfig group, and init error messages.
 */
#include <string.h>

#include <CUnit/CUnit.h>
#include <libconfig.h>

#include "mod/host.h"
#include "base/log.h"
#include "mh_test.h"

static void test_host_table_has_every_1_0_member(void)
{
    const struct mh_api *a = &mh_core_api;

    CU_ASSERT_EQUAL(a->size, sizeof(struct mh_api));
    CU_ASSERT_PTR_NOT_NULL(a->req_method);
    CU_ASSERT_PTR_NOT_NULL(a->req_path);
    CU_ASSERT_PTR_NOT_NULL(a->req_param);
    CU_ASSERT_PTR_NOT_NULL(a->req_query);
    CU_ASSERT_PTR_NOT_NULL(a->req_header);
    CU_ASSERT_PTR_NOT_NULL(a->req_headers);
    CU_ASSERT_PTR_NOT_NULL(a->req_body);
    CU_ASSERT_PTR_NOT_NULL(a->req_json);
    CU_ASSERT_PTR_NOT_NULL(a->req_alloc);
    CU_ASSERT_PTR_NOT_NULL(a->req_defer);
    CU_ASSERT_PTR_NOT_NULL(a->req_id);
    CU_ASSERT_PTR_NOT_NULL(a->resp_header);
    CU_ASSERT_PTR_NOT_NULL(a->reply);
    CU_ASSERT_PTR_NOT_NULL(a->reply_json);
    CU_ASSERT_PTR_NOT_NULL(a->reply_problem);
    CU_ASSERT_PTR_NOT_NULL(a->log_enabled);
    CU_ASSERT_PTR_NOT_NULL(a->log);
    CU_ASSERT_PTR_NOT_NULL(a->req_log);
    CU_ASSERT_PTR_NOT_NULL(a->host_error);
    CU_ASSERT_PTR_NOT_NULL(a->conf_string);
    CU_ASSERT_PTR_NOT_NULL(a->conf_int);
    CU_ASSERT_PTR_NOT_NULL(a->conf_bool);
    CU_ASSERT_PTR_NOT_NULL(a->conf_float);
    CU_ASSERT_PTR_NOT_NULL(a->strerror);
    CU_ASSERT_STRING_EQUAL(a->strerror(MH_E_NOTFOUND), "not found");
}

static const char settings_text[] = "name = \"shop\";\n"
                                    "count = 5;\n"
                                    "big = 5000000000L;\n"
                                    "on = true;\n"
                                    "ratio = 0.25;\n"
                                    "db: { host = \"localhost\"; port = 5432; };\n";

static void test_host_settings_lookups(void)
{
    config_t cfg;
    struct mh_conf *c;
    const char *s = "untouched";
    long long n = -1;
    int b = -1;
    double d = -1;

    config_init(&cfg);
    CU_ASSERT_EQUAL_FATAL(config_read_string(&cfg, settings_text), CONFIG_TRUE);
    c = mh_conf_new(config_root_setting(&cfg));

    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "name", &s), MH_OK);
    CU_ASSERT_STRING_EQUAL(s, "shop");
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "db.host", &s), MH_OK);
    CU_ASSERT_STRING_EQUAL(s, "localhost");
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "count", &n), MH_OK);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "big", &n), MH_OK);
    CU_ASSERT_EQUAL(n, 5000000000LL);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "db.port", &n), MH_OK);
    CU_ASSERT_EQUAL(n, 5432);
    CU_ASSERT_EQUAL(mh_core_api.conf_bool(c, "on", &b), MH_OK);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(mh_core_api.conf_float(c, "ratio", &d), MH_OK);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.25, 1e-12);
    CU_ASSERT_EQUAL(mh_core_api.conf_float(c, "count", &d), MH_OK); /* integers are numbers */
    CU_ASSERT_DOUBLE_EQUAL(d, 5.0, 1e-12);

    /* Absent or of another type: an error, and the output untouched. */
    s = "untouched";
    n = -1;
    b = -1;
    d = -1;
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "missing", &s), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "db.missing", &s), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "count", &s), MH_E_INVAL);
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "db", &s), MH_E_INVAL);
    CU_ASSERT_STRING_EQUAL(s, "untouched");
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "name", &n), MH_E_INVAL);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "ratio", &n), MH_E_INVAL);
    CU_ASSERT_EQUAL(n, -1);
    CU_ASSERT_EQUAL(mh_core_api.conf_bool(c, "count", &b), MH_E_INVAL);
    CU_ASSERT_EQUAL(b, -1);
    CU_ASSERT_EQUAL(mh_core_api.conf_float(c, "on", &d), MH_E_INVAL);
    CU_ASSERT_DOUBLE_EQUAL(d, -1, 1e-12);
    mh_conf_free(c);
    config_destroy(&cfg);
}

static void test_host_settings_without_a_group(void)
{
    struct mh_conf *empty = mh_conf_new(NULL);
    const char *s = "untouched";
    long long n = -1;

    /* A module without a settings group, or given no conf at all, finds nothing. */
    CU_ASSERT_EQUAL(mh_core_api.conf_string(empty, "name", &s), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(NULL, "count", &n), MH_E_NOTFOUND);
    CU_ASSERT_STRING_EQUAL(s, "untouched");
    CU_ASSERT_EQUAL(n, -1);
    mh_conf_free(empty);
    mh_conf_free(NULL);
}

static void test_host_error_keeps_the_last_message(void)
{
    struct mh_host *h = mh_host_new(NULL, "shop");
    char big[1000];

    CU_ASSERT_STRING_EQUAL(h->name, "shop");
    CU_ASSERT_STRING_EQUAL(h->error, "");
    CU_ASSERT_EQUAL(mh_core_api.host_error(h, "first %d", 1), MH_OK);
    CU_ASSERT_EQUAL(mh_core_api.host_error(h, "second %s", "try"), MH_OK);
    CU_ASSERT_STRING_EQUAL(h->error, "second try");
    memset(big, 'e', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mh_core_api.host_error(h, "%s", big);
    CU_ASSERT_EQUAL(strlen(h->error), sizeof(h->error) - 1);
    mh_host_free(h);
    mh_host_free(NULL);
}

static void test_host_log_enabled_follows_the_level(void)
{
    mh_log_set_level(MH_LOG_ERROR);
    CU_ASSERT_FALSE(mh_core_api.log_enabled(MH_LOG_WARN));
    CU_ASSERT_TRUE(mh_core_api.log_enabled(MH_LOG_ERROR));
    mh_log_set_level(MH_LOG_INFO);
    CU_ASSERT_TRUE(mh_core_api.log_enabled(MH_LOG_INFO));
    CU_ASSERT_FALSE(mh_core_api.log_enabled(MH_LOG_DEBUG));
}

static const struct mh_test_case host_tests[] = {
    {"table has every 1.0 member", test_host_table_has_every_1_0_member},
    {"settings lookups", test_host_settings_lookups},
    {"settings without a group", test_host_settings_without_a_group},
    {"error keeps the last message", test_host_error_keeps_the_last_message},
    {"log enabled follows the level", test_host_log_enabled_follows_the_level},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "host", host_tests);
}
