// SMTP command parsing (RFC 5321 section 4.1, ESMTP parameters of RFC 1870,
// 6152, 6531 and 3461). Pure functions over one command line without CRLF;
// the session decides what a well-formed command means in its current state.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/pipeline/types.h"
#include "gateway/util/strings.h"

namespace mxgate::smtp {

enum class Verb {
  kHelo,
  kEhlo,
  kMail,
  kRcpt,
  kData,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kExpn,
  kHelp,
  kStartTls,
  kAuth,
  kBdat,
  kEmpty,
  kUnknown
};

struct Command {
  Verb verb = Verb::kUnknown;
  std::string_view word;  // the verb as sent
  std::string_view arg;   // everything after the verb and one space, trailing spaces trimmed
};

// Splits a command line. Never fails: unknown verbs come back as kUnknown.
Command parseCommand(std::string_view line);

// A syntax problem with the reply the client gets for it.
struct ParseError {
  int code;
  const char* enhanced;
  std::string text;
};

// A parsed reverse-path or forward-path. address excludes the angle brackets;
// empty for the null path "<>".
struct Path {
  std::string address;
  std::string_view params;  // the ESMTP parameter text after the path
};

// Parses the argument of MAIL ("FROM:<path> params") or RCPT ("TO:<path> params").
// Accepts a space after the colon (common and harmless) and RFC 5321 source
// routes (discarded, per 4.1.1.3). utf8 allows UTF-8 in the address (SMTPUTF8).
std::optional<ParseError> parsePath(std::string_view arg, std::string_view keyword, bool utf8,
                                    Path* out);

// True if s is an RFC 5321 Mailbox (Local-part "@" Domain), or, when
// allow_bare_postmaster, the special recipient "postmaster".
bool isValidMailbox(std::string_view s, bool utf8);

// MAIL FROM parameters: SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH.
// max_size 0 means no limit. Unknown parameters are 555 5.5.4 (RFC 5321 4.1.1.11).
std::optional<ParseError> parseMailParams(std::string_view params, uint64_t max_size,
                                          Envelope* env);
// RCPT TO parameters: NOTIFY, ORCPT.
std::optional<ParseError> parseRcptParams(std::string_view params, Recipient* rcpt);

// The domain of an address (after the last '@'), lowercased; empty if none.
std::string domainOf(std::string_view address);
std::string localPartOf(std::string_view address);

}  // namespace mxgate::smtp
