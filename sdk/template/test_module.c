/*
 * Unit tests of @NAME@'s handlers and hooks with the modhost testing host: no server, no
 * sockets. `make test` builds and runs them; the last line says how many passed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void); /* defined by MH_MODULE in @NAME@.c */

static int passed, failed;

/* Counts one check; a failed one is printed with its line and condition. */
static void check(bool ok, int line, const char *cond)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    (void)fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, line, cond);
}

#define CHECK(cond) check((cond), __LINE__, #cond)

static struct mh_testing *start(const char *settings)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    if (settings)
        mh_testing_settings(t, settings);
    if (mh_testing_start(t) != MH_OK)
        (void)fprintf(stderr, "start: %s\n", mh_testing_error(t));
    return t;
}

static void test_hello_greets_the_name(void)
{
    struct mh_testing *t = start("greeting = \"Hi\";");
    struct mh_req *req = mh_testing_req(t, "GET", "/@NAME@/hello/ada");
    const char *msg;

    CHECK(mh_testing_req_route(req, "/@NAME@/hello/{name}") == MH_OK);
    CHECK(mh_testing_call(req, "hello") == MH_OK);
    CHECK(mh_testing_status(req) == 200);
    msg = mh_testing_json_str(req, "message");
    CHECK(msg && strcmp(msg, "Hi, ada!") == 0);
    CHECK(mh_testing_misuses(t) == 0);
    mh_testing_free(t);
}

static void test_a_bad_greeting_is_refused(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    mh_testing_set_string(t, "greeting", "");
    CHECK(mh_testing_start(t) == MH_E_INVAL);
    CHECK(strstr(mh_testing_error(t), "greeting") != NULL);
    mh_testing_free(t);
}

static void test_count_counts_words(void)
{
    struct mh_testing *t = start(NULL);
    struct mh_req *req = mh_testing_req(t, "POST", "/@NAME@/count");
    struct json_object *words;

    mh_testing_req_body(req, "one two  three\n", 15);
    CHECK(mh_testing_call(req, "count") == MH_OK);
    CHECK(mh_testing_status(req) == 200);
    words = mh_testing_json_get(req, "words");
    CHECK(words && json_object_get_int(words) == 3);
    mh_testing_free(t);
}

static void test_websocket_relays_to_the_channel(void)
{
    struct mh_testing *t = start(NULL);
    struct mh_ws *a = mh_testing_ws(t, "ws_open", "ws_message", "ws_close");
    struct mh_ws *b = mh_testing_ws(t, "ws_open", "ws_message", "ws_close");

    CHECK(mh_testing_ws_connect(a, mh_testing_req(t, "GET", "/@NAME@/ws")) == MH_OK);
    CHECK(mh_testing_ws_connect(b, mh_testing_req(t, "GET", "/@NAME@/ws")) == MH_OK);
    CHECK(mh_testing_ws_joined(a, "@NAME@"));
    CHECK(mh_testing_ws_receive(a, false, "hi", 2) == MH_OK);
    CHECK(mh_testing_ws_sent_count(b) == 1);
    CHECK(strcmp(mh_testing_ws_sent(b, 0, NULL, NULL), "hi") == 0);
    CHECK(mh_testing_ws_receive(a, true, "x", 1) == MH_OK);
    CHECK(mh_testing_ws_close_code(a) == MH_WS_BAD_DATA);
    mh_testing_free(t);
}

int main(void)
{
    test_hello_greets_the_name();
    test_a_bad_greeting_is_refused();
    test_count_counts_words();
    test_websocket_relays_to_the_channel();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
