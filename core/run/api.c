/*
 * The function table every module receives at init: the one place where the calls of every
 * layer (requests, replies, tasks, WebSockets, channels, stores, settings, logs) meet, so
 * that no lower layer has to know the upper ones.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "http/request.h"
#include "mod/host.h"
#include "mod/store.h"
#include "ws/pubsub.h"
#include "ws/ws.h"

/* --- 1.2: va_list variants of calls whose variadic form lives in request.c and store.c.
 * They format here and hand the text on, so the one implementation stays the variadic one. */

static enum mh_status api_reply_problemv(struct mh_req *req, int status, const char *type,
                                         const char *fmt, va_list ap) MH_VPRINTF(4);
static enum mh_status api_reply_problemv(struct mh_req *req, int status, const char *type,
                                         const char *fmt, va_list ap)
{
    char *detail;
    enum mh_status rc;

    if (!fmt)
        return mh_reply_problem_impl(req, status, type, NULL);
    detail = mh_xvasprintf(fmt, ap);
    rc = mh_reply_problem_impl(req, status, type, "%s", detail);
    free(detail);
    return rc;
}

static void api_req_logv(const struct mh_req *req, enum mh_log_level level, const char *fmt,
                         va_list ap) MH_VPRINTF(3);
static void api_req_logv(const struct mh_req *req, enum mh_log_level level, const char *fmt,
                         va_list ap)
{
    char *line;

    if (!mh_log_enabled(level))
        return;
    line = mh_xvasprintf(fmt, ap);
    mh_req_log_impl(req, level, "%s", line);
    free(line);
}

static void api_store_set_errorv(const char *fmt, va_list ap) MH_VPRINTF(1);
static void api_store_set_errorv(const char *fmt, va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    mh_store_set_error_impl("%s", msg);
}

static bool api_req_is_cancelled(const struct mh_req *req)
{
    return mh_req_cancelled_impl(req) != 0;
}

static enum mh_status api_req_json_body(struct mh_req *req, struct json_object **out)
{
    const char *detail = NULL;
    enum mh_status rc;

    if (mh_req_replied(req))
        return MH_E_STATE;
    rc = mh_req_json_impl(req, out, &detail);
    if (rc == MH_E_INVAL || rc == MH_E_LIMIT)
        mh_reply_problem_impl(req, rc == MH_E_LIMIT ? 413 : 400, NULL, "%s",
                              detail ? detail : mh_status_str(rc));
    return rc;
}

static uint64_t api_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const struct mh_api mh_core_api = {
    .size = sizeof(struct mh_api),
    .req_method = mh_req_method_impl,
    .req_path = mh_req_path_impl,
    .req_param = mh_req_param_impl,
    .req_query = mh_req_query_impl,
    .req_header = mh_req_header_impl,
    .req_headers = mh_req_headers_impl,
    .req_body = mh_req_body_impl,
    .req_json = mh_req_json_impl,
    .req_alloc = mh_req_alloc_impl,
    .req_defer = mh_req_defer_impl,
    .req_id = mh_req_id_impl,
    .resp_header = mh_resp_header_impl,
    .reply = mh_reply_impl,
    .reply_json = mh_reply_json_impl,
    .reply_problem = mh_reply_problem_impl,
    .log_enabled = mh_host_log_enabled,
    .log = mh_host_log,
    .req_log = mh_req_log_impl,
    .host_error = mh_host_error_impl,
    .conf_string = mh_host_conf_string,
    .conf_int = mh_host_conf_int,
    .conf_bool = mh_host_conf_bool,
    .conf_float = mh_host_conf_float,
    .strerror = mh_status_str,
    .req_cancelled = mh_req_cancelled_impl,
    .task_submit = mh_task_submit_impl,
    .req_task = mh_req_task_impl,
    .store_find = mh_host_store_find,
    .store_get = mh_store_get_impl,
    .store_put = mh_store_put_impl,
    .store_delete = mh_store_delete_impl,
    .store_scan = mh_store_scan_impl,
    .store_error = mh_store_error_impl,
    .store_set_error = mh_store_set_error_impl,
    .value_free = mh_value_free_impl,
    .ws_send = mh_ws_send_impl,
    .ws_close = mh_ws_close_impl,
    .ws_ref = mh_ws_ref_impl,
    .ws_unref = mh_ws_unref_impl,
    .ws_set_data = mh_ws_set_data_impl,
    .ws_data = mh_ws_data_impl,
    .ws_id = mh_ws_id_impl,
    .ws_param = mh_ws_param_impl,
    .ws_join = mh_ws_join_impl,
    .ws_leave = mh_ws_leave_impl,
    .ws_publish = mh_ws_publish_impl,
    .conf_path = mh_host_conf_path,
    /* 1.2 */
    .reply_problemv = api_reply_problemv,
    .logv = mh_host_logv,
    .req_logv = api_req_logv,
    .host_errorv = mh_host_errorv_impl,
    .store_set_errorv = api_store_set_errorv,
    .is_utf8 = mh_utf8_valid,
    .clock_ns = api_clock_ns,
    .req_json_body = api_req_json_body,
    .req_is_cancelled = api_req_is_cancelled,
    .log_is_enabled = mh_host_log_is_enabled,
    .host_name = mh_host_name_impl,
    .stream_begin = mh_stream_begin_impl,
    .stream_write = mh_stream_write_impl,
    .stream_on_drain = mh_stream_on_drain_impl,
    .stream_end = mh_stream_end_impl,
    /* 1.3 */
    .req_request_id = mh_req_request_id_impl,
};
