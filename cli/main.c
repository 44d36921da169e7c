/* main.c — `smtpkit COMMAND ...`: dispatch, --help, --version. */
#include "args.h"
#include "commands.h"
#include "smtpkit.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

/* Every subcommand, in the order `smtpkit --help` lists them. */
static const command commands[] = {
    {"send",
     "submit one message (built from options, or RFC 5322 text on "
     "stdin)",
     cmd_send, help_send},
    {"doctor",
     "probe a server or account and diagnose why sending or login "
     "fails",
     cmd_doctor, help_doctor},
    {"explain", "explain an error text (reply, exception, log line)",
     cmd_explain, help_explain},
    {"lab", "run a local SMTP server that fails like a named real case",
     cmd_lab, help_lab},
    {"demo", "diagnose every lab scenario locally; no account needed", cmd_demo,
     help_demo},
};

static const command *find(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(commands[i].name, name))
      return &commands[i];
  return NULL;
}

static void help_main(void) {
  puts("smtpkit — send e-mail over SMTP, and when it fails, say exactly why.\n"
       "\n"
       "Usage: smtpkit COMMAND [OPTIONS]\n"
       "\n"
       "Commands:");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    printf("  %-8s %s\n", commands[i].name, commands[i].summary);
  puts(
      "  help COMMAND   the options of COMMAND (also: smtpkit COMMAND --help)\n"
      "\n"
      "  smtpkit --help      this text\n"
      "  smtpkit --version   the version\n"
      "\n"
      "Exit codes follow sysexits.h: 0 success, 64 bad command line, 65 bad\n"
      "message or address, 66 input file missing, 67 recipient refused, 68\n"
      "host not found, 69 refused for another reason, 74 connection lost,\n"
      "75 temporary failure (retry later), 76 protocol error, 77\n"
      "authentication refused, 78 settings do not fit the server.\n"
      "\n"
      "Example:\n"
      "  smtpkit send -s smtp.example.com -u me@example.com \\\n"
      "      --password-file ~/.smtp-pass -f me@example.com \\\n"
      "      --to you@example.org --subject 'Hello' --body 'It works.'");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    help_main();
    return EX_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
    help_main();
    return 0;
  }
  if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
    printf("smtpkit %s\n", SMTPKIT_VERSION);
    return 0;
  }
  if (!strcmp(name, "help")) {
    if (argc < 3) {
      help_main();
      return 0;
    }
    const command *c = find(argv[2]);
    if (!c)
      return usage_error(NULL, "no such command '%s'", argv[2]);
    c->help();
    return 0;
  }
  const command *c = find(name);
  if (!c)
    return usage_error(NULL, "unknown command '%s'", name);
  return c->run(argc - 1, argv + 1);
}
