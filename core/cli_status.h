/* `modhost status`: what the running server's admin listener knows, for a terminal. */
#ifndef MH_CLI_STATUS_H
#define MH_CLI_STATUS_H

/** @return the exit status: 0 ready, 1 serving but not ready, 2 usage, 3 unreachable. */
int mh_cli_status(int argc, char **argv);

#endif
