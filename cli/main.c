/* main.c — `smtpkit COMMAND ...`: dispatch, --help, --version. */
#include "args.h"
#include "commands.h"
#include "smtpkit.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

static void help_main(void) {
  puts(
      "smtpkit — send e-mail over SMTP, and when it fails, say exactly why.\n"
      "\n"
      "Usage: smtpkit COMMAND [OPTIONS]\n"
      "\n"
      "Commands:\n"
      "  send     submit one message (built from options, or RFC 5322 text on "
      "stdin)\n"
      "  help COMMAND   show the options of COMMAND\n"
      "\n"
      "  smtpkit --help      this text\n"
      "  smtpkit --version   the version\n"
      "\n"
      "Exit codes follow sysexits.h: 0 sent, 64 bad command line, 65 bad\n"
      "message or address, 66 input file missing, 67 recipient refused, 68\n"
      "host not found, 69 refused for another reason, 74 connection lost, 75\n"
      "temporary failure (retry later), 76 protocol error, 77 "
      "authentication\n"
      "refused, 78 settings do not fit the server.\n"
      "\n"
      "Example:\n"
      "  smtpkit send -s smtp.example.com -u me@example.com \\\n"
      "      --password-file ~/.smtp-pass -f me@example.com --to you@example.org "
      "\\\n"
      "      --subject 'Hello' --body 'It works.'");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    help_main();
    return EX_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    help_main();
    return 0;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
    printf("smtpkit %s\n", SMTPKIT_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "help")) {
    if (argc < 3) {
      help_main();
      return 0;
    }
    if (!strcmp(argv[2], "send")) {
      help_send();
      return 0;
    }
    return usage_error(NULL, "no such command '%s'", argv[2]);
  }
  if (!strcmp(cmd, "send"))
    return cmd_send(argc - 1, argv + 1);
  return usage_error(NULL, "unknown command '%s'", cmd);
}
