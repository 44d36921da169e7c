/* commands.h — one entry point and one help text per subcommand. */
#ifndef SMTPKIT_CLI_COMMANDS_H
#define SMTPKIT_CLI_COMMANDS_H

typedef struct command {
  const char *name;
  const char *summary;               /* one line for `smtpkit --help` */
  int (*run)(int argc, char **argv); /* argv[0] is the command name */
  void (*help)(void);
} command;

int cmd_send(int argc, char **argv);
void help_send(void);
int cmd_explain(int argc, char **argv);
void help_explain(void);
int cmd_lab(int argc, char **argv);
void help_lab(void);
int cmd_demo(int argc, char **argv);
void help_demo(void);
int cmd_doctor(int argc, char **argv);
void help_doctor(void);

#endif
