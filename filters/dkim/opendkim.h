// libopendkim's C header, usable from C++: it spells bool as C99 _Bool.
#pragma once

#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool
