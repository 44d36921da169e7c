/* commands.h — one entry point per subcommand. */
#ifndef SMTPKIT_CLI_COMMANDS_H
#define SMTPKIT_CLI_COMMANDS_H

int cmd_send(int argc, char **argv);
void help_send(void);

#endif
