/*
 * `modhost new-module NAME [DIR]`: writes a module skeleton from the SDK's installed template
 * (a module with a handler, a blocking handler and WebSocket hooks, its conf.d file, a
 * Makefile and a CMakeLists.txt that use pkg-config, and a unit test on the testing host).
 */
#ifndef MH_CLI_NEW_MODULE_H
#define MH_CLI_NEW_MODULE_H

/** The command, with argv[0] = "new-module". @return the exit status (0, 1 failed, 2 usage). */
int mh_cli_new_module(int argc, char **argv);

#endif
