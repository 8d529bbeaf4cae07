/*
 * Logging (core/log.c): level names, the level filter, and the line format on stderr, which
 * is captured into a temporary file for each case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "base/log.h"
#include "mh_test.h"

/* Runs mh_log_write with stderr sent to a file; returns what was written (caller frees). */
static char *capture(enum mh_log_level level, const char *component, const char *msg)
{
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    char *text = NULL;
    long size;

    if (!f || saved < 0 || dup2(fileno(f), STDERR_FILENO) < 0)
        abort();
    mh_log_write(level, component, "%s", msg);
    if (dup2(saved, STDERR_FILENO) < 0)
        abort();
    close(saved);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size)
        abort();
    fclose(f);
    return text;
}

static void test_log_level_names(void)
{
    enum mh_log_level lvl = MH_LOG_ERROR;

    CU_ASSERT_EQUAL(mh_log_level_parse("debug", &lvl), MH_OK);
    CU_ASSERT_EQUAL(lvl, MH_LOG_DEBUG);
    CU_ASSERT_EQUAL(mh_log_level_parse("warn", &lvl), MH_OK);
    CU_ASSERT_EQUAL(lvl, MH_LOG_WARN);
    CU_ASSERT_EQUAL(mh_log_level_parse("ERROR", &lvl), MH_OK);
    CU_ASSERT_EQUAL(lvl, MH_LOG_ERROR);
    CU_ASSERT_EQUAL(mh_log_level_parse("info", &lvl), MH_OK);
    CU_ASSERT_EQUAL(lvl, MH_LOG_INFO);
    CU_ASSERT_EQUAL(mh_log_level_parse("warning", &lvl), MH_E_INVAL);
    CU_ASSERT_EQUAL(mh_log_level_parse("", &lvl), MH_E_INVAL);
    CU_ASSERT_EQUAL(lvl, MH_LOG_INFO); /* untouched on failure */
    CU_ASSERT_STRING_EQUAL(mh_log_level_name(MH_LOG_ERROR), "error");
    CU_ASSERT_STRING_EQUAL(mh_log_level_name(MH_LOG_DEBUG), "debug");
    CU_ASSERT_STRING_EQUAL(mh_log_level_name((enum mh_log_level)4), "?");
    CU_ASSERT_STRING_EQUAL(mh_log_level_name((enum mh_log_level) - 1), "?");
}

static void test_log_level_filter(void)
{
    mh_log_set_level(MH_LOG_WARN);
    CU_ASSERT_TRUE(mh_log_enabled(MH_LOG_ERROR));
    CU_ASSERT_TRUE(mh_log_enabled(MH_LOG_WARN));
    CU_ASSERT_FALSE(mh_log_enabled(MH_LOG_INFO));
    CU_ASSERT_FALSE(mh_log_enabled(MH_LOG_DEBUG));
    mh_log_set_level(MH_LOG_DEBUG);
    CU_ASSERT_TRUE(mh_log_enabled(MH_LOG_DEBUG));
    mh_log_set_level(MH_LOG_INFO);
}

static void test_log_line_format(void)
{
    char *line = capture(MH_LOG_WARN, "loader", "module 'x' refused");
    size_t len = strlen(line);

    /* 2024-01-02T03:04:05.678Z warn  loader: module 'x' refused\n */
    CU_ASSERT_EQUAL(len, 24 + 1 + 5 + 1 + strlen("loader: module 'x' refused") + 1);
    CU_ASSERT_TRUE(len > 24 && line[4] == '-' && line[10] == 'T' && line[19] == '.' &&
                   line[23] == 'Z' && line[24] == ' ');
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " warn  loader: module 'x' refused\n"));
    free(line);
}

static void test_log_line_breaks_cannot_be_injected(void)
{
    char *line = capture(MH_LOG_ERROR, "req", "a\nb\r\nc");

    CU_ASSERT_PTR_NOT_NULL(strstr(line, "error req: a b  c\n"));
    CU_ASSERT_PTR_EQUAL(strchr(line, '\n'), line + strlen(line) - 1);
    free(line);
}

static void test_log_long_message_is_one_truncated_line(void)
{
    char *msg = malloc(5000);
    char *line;

    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    memset(msg, 'm', 4999);
    msg[4999] = '\0';
    line = capture(MH_LOG_INFO, "c", msg);
    CU_ASSERT_EQUAL(strlen(line), 2047);
    CU_ASSERT_PTR_EQUAL(strchr(line, '\n'), line + 2046);
    free(line);
    free(msg);
}

static const struct mh_test_case log_tests[] = {
    {"level names", test_log_level_names},
    {"level filter", test_log_level_filter},
    {"line format", test_log_line_format},
    {"line breaks cannot be injected", test_log_line_breaks_cannot_be_injected},
    {"long message is one truncated line", test_log_long_message_is_one_truncated_line},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "log", log_tests);
}
