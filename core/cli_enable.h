/*
 * `modhost enable NAME` / `modhost disable NAME`: link a module's shipped conf file from the
 * modules-available directory into conf.d (or remove the link), keeping conf.d unchanged when
 * the configuration would not pass `modhost check`.
 */
#ifndef MH_CLI_ENABLE_H
#define MH_CLI_ENABLE_H

/*
 * The commands, argv[0] being "enable" or "disable".
 * @return the process exit status: 0 done, 1 refused (the message is printed), 2 bad usage.
 */
int mh_cli_enable(int argc, char **argv);
int mh_cli_disable(int argc, char **argv);

#endif
