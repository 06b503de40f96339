// libcrypt (libxcrypt, Debian's libcrypt-dev): the password hashes of /etc/shadow (yescrypt, SHA-512).
#include <crypt.h>
