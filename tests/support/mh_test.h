/*
 * Test support: the CUnit runner every suite uses (one executable per suite, its cases in a
 * table) and temporary directories for conf.d files. Failures of the helpers themselves abort,
 * since a test that cannot set up its input has nothing to report.
 */
#ifndef MH_TEST_H
#define MH_TEST_H

#include <stddef.h>

#ifdef __clang_analyzer__
/* CUnit's _FATAL assertions end a failed case with a longjmp the static analyzer does not
 * follow, so it reports the NULL dereferences they exist to stop. For the analyzer only, a
 * failed one aborts instead: the same for what comes after it, which never runs. */
#include <stdlib.h>

#include <CUnit/CUnit.h>
#undef CU_ASSERT_FATAL
#undef CU_ASSERT_EQUAL_FATAL
#undef CU_ASSERT_PTR_NOT_NULL_FATAL
#define CU_ASSERT_FATAL(value) \
    do {                       \
        if (!(value))          \
            abort();           \
    } while (0)
#define CU_ASSERT_EQUAL_FATAL(actual, expected) \
    do {                                        \
        if ((actual) != (expected))             \
            abort();                            \
    } while (0)
#define CU_ASSERT_PTR_NOT_NULL_FATAL(value) \
    do {                                    \
        if (!(value))                       \
            abort();                        \
    } while (0)
#endif

/** One case of a suite. Tables end with {NULL, NULL}. */
struct mh_test_case {
    const char *name;
    void (*fn)(void);
};

/**
 * Registers @p cases as the suite @p suite_name and runs them with CUnit's verbose basic
 * interface. With an argument, runs only the cases whose name contains it.
 * @return 0 if every case ran and passed, 1 otherwise (also when no case matched).
 */
int mh_test_main(int argc, char **argv, const char *suite_name, const struct mh_test_case *cases);

/** @p s, or "(null)": lets CU_ASSERT_STRING_EQUAL report a NULL instead of crashing on it. */
const char *mh_test_str(const char *s);

/** A temporary directory, removed with everything in it by mh_test_dir_cleanup. */
struct mh_test_dir {
    char path[256]; /* absolute, no trailing slash */
};

/** Creates a fresh directory under $TMPDIR (or /tmp). Aborts on failure. */
void mh_test_dir_init(struct mh_test_dir *d);
/** Removes the directory recursively. */
void mh_test_dir_cleanup(struct mh_test_dir *d);
/**
 * Writes @p text to @p name inside the directory (parent directories are created; an existing
 * file is replaced). Aborts on failure.
 * @return the file's full path. Borrowed: valid until the next call of this function.
 */
const char *mh_test_dir_write(struct mh_test_dir *d, const char *name, const char *text);

/** A file to write: its name inside the directory and its contents. */
struct mh_test_file {
    const char *name;
    const char *text;
};

/** Writes each of @p files (ending with {NULL, NULL}) as mh_test_dir_write does. */
void mh_test_dir_write_all(struct mh_test_dir *d, const struct mh_test_file *files);
/** Creates the directory @p name (and its parents) inside @p d. Aborts on failure. */
void mh_test_dir_mkdir(struct mh_test_dir *d, const char *name);
/** Writes "<dir>/<name>" into @p buf (aborts if it does not fit). @return buf. */
char *mh_test_dir_path(const struct mh_test_dir *d, const char *name, char *buf, size_t size);

/** Removes @p path and, if it is a directory, everything under it. @return 0 or -1. */
int mh_test_rmtree(const char *path);

#endif
