/*
 * Unit suite for core/admin/merge.c: several processes' Prometheus text merged into one:
 * counters, histograms and per-process gauges add up, the gauges every process reports alike
 * take the largest value, order is that of first appearance, malformed lines are dropped.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

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

static const struct mh_test_case merge_tests[] = {
    {"sums counters, histograms and per-process gauges",
     test_merge_sums_counters_histograms_and_process_gauges},
    {"takes the largest of what every process reports",
     test_merge_takes_the_largest_of_what_every_process_reports},
    {"values and malformed lines", test_merge_values_and_malformed_lines},
    {"merge of one text keeps it", test_merge_of_one_text_keeps_it},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "merge", merge_tests);
}
