/*
 * Unit suite for core/admin/merge.c: several processes' Prometheus text merged into one:
 * counters, histograms and per-process gauges add up, the gauges every process reports alike
 * take the largest value, order is that of first appearance, malformed lines are dropped; and
 * the workers' /status.json documents (admin/merge_status.c) merged module by module.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "admin/merge.h"
#include "mh_test.h"

static char *merge2(const char *a, const char *b)
{
    struct mh_prom_text t[2] = {{a, strlen(a)}, {b, b ? strlen(b) : 0}};
    struct mh_buf out = {0};

    mh_prom_merge(t, b ? 2 : 1, &out);
    mh_buf_add(&out, "", 1);
    return out.data;
}

static void test_merge_sums_counters_histograms_and_process_gauges(void)
{
    const char *a = "# HELP modhost_requests_total Requests.\n"
                    "# TYPE modhost_requests_total counter\n"
                    "modhost_requests_total{route=\"/a\",class=\"2xx\"} 3\n"
                    "modhost_requests_total{route=\"/b\",class=\"2xx\"} 1\n"
                    "# HELP modhost_connections_open Open.\n"
                    "# TYPE modhost_connections_open gauge\n"
                    "modhost_connections_open 2\n"
                    "# HELP modhost_request_duration_seconds Latency.\n"
                    "# TYPE modhost_request_duration_seconds histogram\n"
                    "modhost_request_duration_seconds_bucket{le=\"0.001\"} 1\n"
                    "modhost_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"
                    "modhost_request_duration_seconds_sum 0.25\n"
                    "modhost_request_duration_seconds_count 4\n";
    const char *b = "# HELP modhost_requests_total Requests.\n"
                    "# TYPE modhost_requests_total counter\n"
                    "modhost_requests_total{route=\"/a\",class=\"2xx\"} 5\n"
                    "modhost_requests_total{route=\"/c\",class=\"5xx\"} 2\n"
                    "# HELP modhost_connections_open Open.\n"
                    "# TYPE modhost_connections_open gauge\n"
                    "modhost_connections_open 3\n"
                    "# HELP modhost_request_duration_seconds Latency.\n"
                    "# TYPE modhost_request_duration_seconds histogram\n"
                    "modhost_request_duration_seconds_bucket{le=\"0.001\"} 2\n"
                    "modhost_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"
                    "modhost_request_duration_seconds_sum 0.5\n"
                    "modhost_request_duration_seconds_count 2\n";
    char *m = merge2(a, b);

    CU_ASSERT_STRING_EQUAL(m, "# HELP modhost_requests_total Requests.\n"
                              "# TYPE modhost_requests_total counter\n"
                              "modhost_requests_total{route=\"/a\",class=\"2xx\"} 8\n"
                              "modhost_requests_total{route=\"/b\",class=\"2xx\"} 1\n"
                              "modhost_requests_total{route=\"/c\",class=\"5xx\"} 2\n"
                              "# HELP modhost_connections_open Open.\n"
                              "# TYPE modhost_connections_open gauge\n"
                              "modhost_connections_open 5\n"
                              "# HELP modhost_request_duration_seconds Latency.\n"
                              "# TYPE modhost_request_duration_seconds histogram\n"
                              "modhost_request_duration_seconds_bucket{le=\"0.001\"} 3\n"
                              "modhost_request_duration_seconds_bucket{le=\"+Inf\"} 6\n"
                              "modhost_request_duration_seconds_sum 0.75\n"
                              "modhost_request_duration_seconds_count 6\n");
    free(m);
}

static void test_merge_takes_the_largest_of_what_every_process_reports(void)
{
    const char *a = "# TYPE modhost_build_info gauge\n"
                    "modhost_build_info{version=\"0.1.0\"} 1\n"
                    "# TYPE modhost_generation gauge\n"
                    "modhost_generation 3\n"
                    "# TYPE modhost_reloads_total counter\n"
                    "modhost_reloads_total{result=\"ok\"} 2\n"
                    "# TYPE modhost_uptime_seconds gauge\n"
                    "modhost_uptime_seconds 10.5\n";
    const char *b = "# TYPE modhost_build_info gauge\n"
                    "modhost_build_info{version=\"0.1.0\"} 1\n"
                    "# TYPE modhost_generation gauge\n"
                    "modhost_generation 2\n"
                    "# TYPE modhost_reloads_total counter\n"
                    "modhost_reloads_total{result=\"ok\"} 1\n"
                    "# TYPE modhost_uptime_seconds gauge\n"
                    "modhost_uptime_seconds 3.25\n";
    char *m = merge2(a, b);

    CU_ASSERT_STRING_EQUAL(m, "# TYPE modhost_build_info gauge\n"
                              "modhost_build_info{version=\"0.1.0\"} 1\n"
                              "# TYPE modhost_generation gauge\n"
                              "modhost_generation 3\n"
                              "# TYPE modhost_reloads_total counter\n"
                              "modhost_reloads_total{result=\"ok\"} 2\n"
                              "# TYPE modhost_uptime_seconds gauge\n"
                              "modhost_uptime_seconds 10.5\n");
    free(m);
}

static void test_merge_values_and_malformed_lines(void)
{
    const char *a = "stray_sample_before_any_type 1\n"
                    "# HELP lonely_help has no TYPE\n"
                    "# TYPE x_total counter\n"
                    "# a comment of another kind\n"
                    "x_total{a=\"1\"} 0.1\n"
                    "x_total{a=\"2\"} not-a-number\n"
                    "x_total{a=\"3\"} NaN\n"
                    "novalue\n"
                    "\n"
                    "x_total{a=\"4\"} 1e20";
    const char *b = "# TYPE x_total counter\n"
                    "x_total{a=\"1\"} 0.2\n"
                    "x_total{a=\"5\"} +Inf\n";
    char *m = merge2(a, b);

    CU_ASSERT_STRING_EQUAL(m, "# TYPE x_total counter\n"
                              "x_total{a=\"1\"} 0.30000000000000004\n"
                              "x_total{a=\"3\"} NaN\n"
                              "x_total{a=\"4\"} 1e+20\n"
                              "x_total{a=\"5\"} +Inf\n");
    free(m);
}

static void test_merge_of_one_text_keeps_it(void)
{
    const char *a = "# HELP a_total A.\n"
                    "# TYPE a_total counter\n"
                    "a_total 7\n"
                    "# TYPE b gauge\n"
                    "b{x=\"y z\"} -2\n";
    char *m = merge2(a, NULL);

    CU_ASSERT_STRING_EQUAL(m, a);
    free(m);
}

/* A worker's /status.json as mh_admin_status_json renders it, for one module "m" (and, with
 * @p other, a second module "only" loaded in that worker alone). */
static char *status_doc(int uptime, int requests, int bucket0, int bucket5, bool quarantined,
                        bool other)
{
    char *s = NULL;
    int n =
        asprintf(&s,
                 "{\"version\":\"1.0\",\"pid\":%d,\"uptime_s\":%d.5,\"generation\":2,"
                 "\"generations_live\":1,\"reloads_ok\":1,\"reloads_failed\":0,"
                 "\"bounds_us\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15],\"modules\":["
                 "{\"name\":\"m\",\"version\":\"1\",\"quarantined\":%s,\"routes\":3,"
                 "\"requests\":%d,\"errors\":1,\"client_errors\":2,\"ws_open\":1,"
                 "\"ws_messages\":4,\"p50_us\":0,\"p99_us\":0,"
                 "\"latency\":[%d,0,0,0,0,%d,0,0,0,0,0,0,0,0,0,0]}%s],"
                 "\"totals\":{\"requests\":%d,\"errors\":1,\"in_flight\":0,"
                 "\"connections_open\":2,\"ws_open\":1,\"bytes_in\":10,\"bytes_out\":20,"
                 "\"pool_busy\":0,\"pool_queued\":0,\"pool_workers\":4,\"p50_us\":0,"
                 "\"p99_us\":0,\"latency\":[%d,0,0,0,0,%d,0,0,0,0,0,0,0,0,0,0]}}",
                 100 + uptime, uptime, quarantined ? "true" : "false", requests, bucket0, bucket5,
                 other ? ",{\"name\":\"only\",\"version\":\"2\",\"quarantined\":false,"
                         "\"routes\":1,\"requests\":5,\"errors\":0,\"client_errors\":0,"
                         "\"ws_open\":0,\"ws_messages\":0,\"p50_us\":7,\"p99_us\":9,"
                         "\"latency\":[5,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}"
                       : "",
                 requests, bucket0, bucket5);

    CU_ASSERT_FATAL(n > 0);
    return s;
}

static struct json_object *status_merged(const char *const *docs, size_t n)
{
    struct mh_prom_text t[4];
    struct mh_buf out = {0};
    struct json_object *o;

    for (size_t i = 0; i < n; i++)
        t[i] = (struct mh_prom_text){docs[i], strlen(docs[i])};
    mh_status_merge(t, n, &out);
    mh_buf_add(&out, "", 1);
    o = json_tokener_parse(out.data);
    mh_buf_cleanup(&out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    return o;
}

static long long num(struct json_object *o, const char *path)
{
    char key[64];
    const char *dot;
    struct json_object *v = o;

    while (v && (dot = strchr(path, '.')) != NULL) {
        snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
        v = isdigit((unsigned char)key[0]) ? json_object_array_get_idx(v, strtoul(key, NULL, 10))
                                           : json_object_object_get(v, key);
        path = dot + 1;
    }
    v = v ? json_object_object_get(v, path) : NULL;
    CU_ASSERT_PTR_NOT_NULL(v);
    return v ? (long long)json_object_get_int64(v) : -1;
}

static void test_status_merge_adds_up_modules_and_totals(void)
{
    char *a = status_doc(10, 6, 6, 0, false, false), *b = status_doc(30, 4, 0, 4, true, true);
    const char *docs[] = {a, b};
    struct json_object *o = status_merged(docs, 2), *mods = json_object_object_get(o, "modules");

    CU_ASSERT_EQUAL(num(o, "workers"), 2);
    CU_ASSERT_EQUAL(num(o, "pid"), 110); /* the answering worker's */
    CU_ASSERT_EQUAL((int)json_object_get_double(json_object_object_get(o, "uptime_s")), 30);
    CU_ASSERT_EQUAL(num(o, "generation"), 2);
    CU_ASSERT_EQUAL(num(o, "reloads_ok"), 1); /* the same reload, not one per worker */
    CU_ASSERT_EQUAL(json_object_array_length(mods), 2);
    CU_ASSERT_EQUAL(num(o, "modules.0.requests"), 10);
    CU_ASSERT_EQUAL(num(o, "modules.0.errors"), 2);
    CU_ASSERT_EQUAL(num(o, "modules.0.client_errors"), 4);
    CU_ASSERT_EQUAL(num(o, "modules.0.ws_messages"), 8);
    CU_ASSERT_EQUAL(num(o, "modules.0.routes"), 3); /* the same routes in both */
    CU_ASSERT_TRUE(json_object_get_boolean(
        json_object_object_get(json_object_array_get_idx(mods, 0), "quarantined")));
    /* 6 requests in the first bucket (0 to 100 us) and 4 in the sixth (2.5 to 5 ms), from the
     * summed buckets: the median 5/6 into the first, p99 3.9/4 into the sixth (the first
     * worker alone has p99 99 us, the second p50 3,750 us) */
    CU_ASSERT_EQUAL(num(o, "modules.0.p50_us"), 83);
    CU_ASSERT_EQUAL(num(o, "modules.0.p99_us"), 4938);
    CU_ASSERT_EQUAL(num(o, "modules.1.requests"), 5); /* loaded in one worker: as it says */
    CU_ASSERT_EQUAL(num(o, "totals.requests"), 10);
    CU_ASSERT_EQUAL(num(o, "totals.connections_open"), 4);
    CU_ASSERT_EQUAL(num(o, "totals.bytes_out"), 40);
    CU_ASSERT_EQUAL(num(o, "totals.pool_workers"), 8);
    CU_ASSERT_EQUAL(num(o, "totals.p99_us"), 4938);
    json_object_put(o);
    free(a);
    free(b);
}

static void test_status_merge_leaves_out_what_does_not_parse(void)
{
    char *a = status_doc(10, 6, 6, 0, false, false);
    const char *docs[] = {"{\"cut\":", a, "[1,2]"};
    struct json_object *o = status_merged(docs, 3);

    CU_ASSERT_EQUAL(num(o, "workers"), 1);
    CU_ASSERT_EQUAL(num(o, "totals.requests"), 6);
    CU_ASSERT_EQUAL(num(o, "modules.0.p50_us"), 50); /* 3 of the 6 in the first bucket */
    json_object_put(o);
    o = status_merged(docs, 1);
    CU_ASSERT_EQUAL(json_object_object_length(o), 0); /* nothing readable: {} */
    json_object_put(o);
    free(a);
}

static const struct mh_test_case merge_tests[] = {
    {"sums counters, histograms and per-process gauges",
     test_merge_sums_counters_histograms_and_process_gauges},
    {"takes the largest of what every process reports",
     test_merge_takes_the_largest_of_what_every_process_reports},
    {"values and malformed lines", test_merge_values_and_malformed_lines},
    {"merge of one text keeps it", test_merge_of_one_text_keeps_it},
    {"status merge adds up modules and totals", test_status_merge_adds_up_modules_and_totals},
    {"status merge leaves out what does not parse",
     test_status_merge_leaves_out_what_does_not_parse},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "merge", merge_tests);
}
