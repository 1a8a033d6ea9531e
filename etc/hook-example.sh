#!/bin/sh
# An example mxgate command hook ([filters.hook] in mxgate.toml):
#
#   [filters.hook]
#   command = ["/etc/mxgate/hook-example.sh", "%filepath", "%sender", "%recipients"]
#
# Arguments: as configured. Here: $1 the message file (the message exactly as
# received, CRLF line ends; readable only by mxgate's user and removed when
# this program ends), $2 the envelope sender ("" for <>), then one argument
# per recipient. The same values are in MXGATE_FILE, MXGATE_SENDER,
# MXGATE_RECIPIENTS (space-separated), MXGATE_CLIENT_IP and MXGATE_HELO.
# stdin is /dev/null; the environment holds only these and PATH.
#
# Exit status (the defaults; see the *_codes settings):
#   0   accept: the message goes on through the other checks
#   1   reject: the client gets 550 5.7.1 with the first line printed on
#       stdout (printable ASCII, at most 200 characters), or reject_text
#   2   hold: the message is accepted and quarantined in the spool
#   75  tempfail (EX_TEMPFAIL): the client gets 451 4.3.0 and retries later
#   anything else, a crash, or running past command_timeout: the filter's
#       on_error applies (tempfail by default: unchecked mail is never accepted)
# Print nothing else on stdout before the reason; stderr is logged when the
# program fails.
set -u

file="$1"
sender="$2"
shift 2

# Refuse messages carrying an executable attachment name.
if grep -qiE '^Content-(Type|Disposition):.*name="?[^"]*\.(exe|scr|bat)"?' "$file"; then
  echo "Executable attachments are not accepted here"
  exit 1
fi

# Hold mail from one sender for review.
case "$sender" in
  *@suspicious.example) echo "held for review"; exit 2 ;;
esac

# Defer while a local resource is missing (e.g. a scanner being restarted).
if [ -e /run/mxgate-hook.pause ]; then
  echo "Local checks paused, try again later"
  exit 75
fi

exit 0
