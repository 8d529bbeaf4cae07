/*
 * chat's WebSocket hooks through the testing host: joining a room's channel, broadcasts to the
 * room only, refused names, bad messages answered with an error, history replayed to a late
 * joiner from the store, and the page handler.
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

static struct mh_testing *started(bool with_store)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    if (with_store)
        mh_testing_add_store(t, "main");
    if (mh_testing_start(t) != MH_OK) {
        mh_testing_free(t);
        return NULL;
    }
    return t;
}

/* A connection to room @p room as @p user. @return it, open, or NULL. */
static struct mh_ws *join(struct mh_testing *t, const char *room, const char *user)
{
    struct mh_ws *ws = mh_testing_ws(t, "chat_open", "chat_message", "chat_close");
    char target[128];
    struct mh_req *req;

    (void)snprintf(target, sizeof(target), "/ws/chat/%s?name=%s", room, user);
    req = mh_testing_req(t, "GET", target);
    mh_testing_req_route(req, "/ws/chat/{room}");
    if (mh_testing_ws_connect(ws, req) != MH_OK || !mh_testing_ws_is_open(ws))
        return NULL;
    return ws;
}

/* The member @p key of sent message @p i of @p ws, as a string ("(absent)" if none). */
static const char *sent_member(const struct mh_ws *ws, size_t i, const char *key, char *buf,
                               size_t size)
{
    struct json_object *o = json_tokener_parse(mh_test_str(mh_testing_ws_sent(ws, i, NULL, NULL)));
    struct json_object *v = NULL;

    (void)snprintf(buf, size, "%s",
                   json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "(absent)");
    json_object_put(o);
    return buf;
}

static void test_chat_broadcasts_to_the_room_only(void)
{
    struct mh_testing *t = started(false);
    struct mh_ws *alice, *bob, *carol;
    char buf[256];

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    alice = join(t, "r1", "alice");
    bob = join(t, "r1", "bob");
    carol = join(t, "r2", "carol");
    CU_ASSERT_PTR_NOT_NULL_FATAL(alice);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bob);
    CU_ASSERT_PTR_NOT_NULL_FATAL(carol);
    CU_ASSERT_TRUE(mh_testing_ws_joined(alice, "chat:r1"));
    CU_ASSERT_TRUE(mh_testing_ws_joined(carol, "chat:r2"));
    /* alice saw her own join and bob's. */
    CU_ASSERT_EQUAL(mh_testing_ws_sent_count(alice), 2);
    CU_ASSERT_STRING_EQUAL(sent_member(alice, 1, "user", buf, sizeof(buf)), "bob");

    CU_ASSERT_EQUAL(mh_testing_ws_receive(alice, false, "{\"text\": \"hi\"}", 14), MH_OK);
    CU_ASSERT_EQUAL_FATAL(mh_testing_ws_sent_count(bob), 2);
    CU_ASSERT_STRING_EQUAL(sent_member(bob, 1, "type", buf, sizeof(buf)), "message");
    CU_ASSERT_STRING_EQUAL(sent_member(bob, 1, "text", buf, sizeof(buf)), "hi");
    CU_ASSERT_STRING_EQUAL(sent_member(bob, 1, "user", buf, sizeof(buf)), "alice");
    CU_ASSERT_EQUAL(mh_testing_ws_sent_count(carol), 1); /* only her own join */

    mh_testing_ws_disconnect(bob, 1000);
    CU_ASSERT_STRING_EQUAL(sent_member(alice, 3, "type", buf, sizeof(buf)), "leave");
    CU_ASSERT_EQUAL(mh_testing_misuses(t), 0);
    mh_testing_free(t);
}

static void test_chat_refuses_bad_names(void)
{
    struct mh_testing *t = started(false);
    struct mh_ws *ws = mh_testing_ws(t, "chat_open", "chat_message", "chat_close");
    struct mh_req *req = mh_testing_req(t, "GET", "/ws/chat/bad%20room");

    CU_ASSERT_PTR_NOT_NULL_FATAL(ws);
    mh_testing_req_route(req, "/ws/chat/{room}");
    CU_ASSERT_EQUAL(mh_testing_ws_connect(ws, req), MH_OK);
    CU_ASSERT_FALSE(mh_testing_ws_is_open(ws));
    CU_ASSERT_EQUAL(mh_testing_status(req), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_test_str(mh_testing_json_str(req, "detail")), "room"));
    CU_ASSERT_PTR_NULL(join(t, "r1", "b@d"));
    mh_testing_free(t);
}

static void test_chat_answers_bad_messages_with_an_error(void)
{
    static const char *const bad[] = {"not json", "{\"text\": 5}", "[]", "{\"text\": \"a\"} x"};
    struct mh_testing *t = started(false);
    struct mh_ws *ws = join(t, "r1", "alice");
    char buf[256];

    CU_ASSERT_PTR_NOT_NULL_FATAL(ws);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mh_testing_ws_receive(ws, false, bad[i], strlen(bad[i]));
        CU_ASSERT_STRING_EQUAL(sent_member(ws, i + 1, "type", buf, sizeof(buf)), "error");
    }
    CU_ASSERT_EQUAL(mh_testing_published_count(t), 1); /* the join only */
    mh_testing_ws_receive(ws, true, "x", 1);
    CU_ASSERT_EQUAL(mh_testing_ws_close_code(ws), 1003);
    CU_ASSERT_FALSE(mh_testing_ws_is_open(ws));
    mh_testing_free(t);
}

static void test_chat_replays_history_to_a_late_joiner(void)
{
    struct mh_testing *t = started(true);
    struct mh_ws *alice = join(t, "r1", "alice"), *bob;
    char buf[256];
    size_t n;

    CU_ASSERT_PTR_NOT_NULL_FATAL(alice);
    mh_testing_ws_receive(alice, false, "{\"text\": \"one\"}", 15);
    mh_testing_ws_receive(alice, false, "{\"text\": \"two\"}", 15);
    bob = join(t, "r1", "bob");
    CU_ASSERT_PTR_NOT_NULL_FATAL(bob);
    n = mh_testing_ws_sent_count(bob);
    CU_ASSERT_EQUAL_FATAL(n, 3); /* his join, then the two messages from history */
    CU_ASSERT_STRING_EQUAL(sent_member(bob, 1, "text", buf, sizeof(buf)), "one");
    CU_ASSERT_STRING_EQUAL(sent_member(bob, 1, "history", buf, sizeof(buf)), "true");
    CU_ASSERT_STRING_EQUAL(sent_member(bob, 2, "text", buf, sizeof(buf)), "two");
    mh_testing_free(t);
}

static void test_chat_serves_its_page(void)
{
    struct mh_testing *t = started(false);
    struct mh_req *req = mh_testing_req(t, "GET", "/chat/");

    CU_ASSERT_EQUAL(mh_testing_call(req, "page"), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_status(req), 200);
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(req, "Cache-Control")), "no-cache");
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_body(req, NULL), "<html"));
    mh_testing_free(t);
}

static const struct mh_test_case chat_tests[] = {
    {"broadcasts to the room only", test_chat_broadcasts_to_the_room_only},
    {"refuses bad names", test_chat_refuses_bad_names},
    {"answers bad messages with an error", test_chat_answers_bad_messages_with_an_error},
    {"replays history to a late joiner", test_chat_replays_history_to_a_late_joiner},
    {"serves its page", test_chat_serves_its_page},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "module_chat", chat_tests);
}
