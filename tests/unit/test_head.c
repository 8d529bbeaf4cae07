/* Unit suite for core/http/head.c: the head of a response. */
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/loop.h"
#include "http/head.h"
#include "http/req.h"
#include "mh_test.h"

static char *head(const struct mh_reply_head *h)
{
    static struct mh_loop loop;
    static char out[1024];
    size_t max = mh_head_max(&loop, h);
    char *end;

    CU_ASSERT_FATAL(max < sizeof(out));
    end = mh_head_put(out, &loop, h);
    CU_ASSERT_FATAL((size_t)(end - out) <= max);
    *end = '\0';
    /* Mask the date: it changes every second. */
    if (strncmp(out + 17, "Date: ", 6) == 0 || strstr(out, "Date: "))
        memset(strstr(out, "Date: ") + 6, 'D', 29);
    return out;
}

static void test_head_ok_with_type_and_length(void)
{
    struct mh_reply_head h = {
        .status = 200, .content_type = "application/json", .content_length = 27};

    CU_ASSERT_STRING_EQUAL(head(&h), "HTTP/1.1 200 OK\r\nDate: DDDDDDDDDDDDDDDDDDDDDDDDDDDDD\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Content-Length: 27\r\n\r\n");
}

static void test_head_fields_in_the_modules_order(void)
{
    struct mh_resp_field b = {NULL, "B", "2"}, a = {&b, "A", "1"}; /* recorded reversed */
    struct mh_reply_head h = {.status = 201, .fields = &a, .close = true};

    CU_ASSERT_STRING_EQUAL(head(&h), "HTTP/1.1 201 Created\r\nDate: "
                                     "DDDDDDDDDDDDDDDDDDDDDDDDDDDDD\r\nB: 2\r\nA: 1\r\n"
                                     "Content-Length: 0\r\nConnection: close\r\n\r\n");
}

static void test_head_bodyless_statuses_have_no_length(void)
{
    struct mh_reply_head h = {.status = 204, .content_length = 5};

    CU_ASSERT_PTR_NULL(strstr(head(&h), "Content-Length"));
    h.status = 304;
    CU_ASSERT_PTR_NULL(strstr(head(&h), "Content-Length"));
    h.status = 200;
    CU_ASSERT_PTR_NOT_NULL(strstr(head(&h), "Content-Length: 5\r\n"));
}

static void test_head_keep_alive_for_http_10(void)
{
    struct mh_reply_head h = {
        .status = 503, .keep_alive_10 = true, .extra_name = "Retry-After", .extra_value = "1"};
    const char *s = head(&h);

    CU_ASSERT_PTR_NOT_NULL(strstr(s, "HTTP/1.1 503 Service Unavailable\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "Retry-After: 1\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "Connection: keep-alive\r\n\r\n"));
}

static void test_head_reasons(void)
{
    CU_ASSERT_STRING_EQUAL(mh_http_reason(404), "Not Found");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(431), "Request Header Fields Too Large");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(299), "Unknown");
}

static const struct mh_test_case head_tests[] = {
    {"ok with type and length", test_head_ok_with_type_and_length},
    {"fields in the module's order", test_head_fields_in_the_modules_order},
    {"bodyless statuses have no length", test_head_bodyless_statuses_have_no_length},
    {"keep-alive for HTTP/1.0", test_head_keep_alive_for_http_10},
    {"reasons", test_head_reasons},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "head", head_tests);
}
