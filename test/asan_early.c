/*-------------------------------------------------------------------------
 *
 * asan_early.c
 *	  Preloaded after the ASan runtime by `scripts/run-tests --sanitize`:
 *	  initializes AddressSanitizer before a library constructor can make
 *	  it initialize inside a libc lock.
 *
 * The postgres binary (and psql, initdb) is not instrumented, so the ASan
 * runtime comes in through LD_PRELOAD, and initializes in its constructor,
 * which the dynamic loader runs after the constructors of the program's
 * own libraries.  Some of those call libc functions that allocate while
 * holding a libc lock: on Debian bookworm, libp11-kit's constructor calls
 * newlocale() (__libc_setlocale_lock) and libgpg-error's calls
 * bindtextdomain() (_nl_state_lock).  The allocation goes to ASan's malloc,
 * which initializes the runtime there, inside the lock; the runtime's
 * initialization then leaves the lock unusable, and the program hangs the
 * next time it takes it (postgres -V hangs in bindtextdomain).
 *
 * These wrappers initialize ASan first, outside any lock, then call libc.
 *
 * It also hands UBSan its options.  gcc's UBSan runtime reads
 * UBSAN_OPTIONS when it first reports, from /proc/self/environ; by then
 * postgres has written its process title over the original environment,
 * so the runtime would find no options (no suppressions, no log_path, no
 * stack traces).  The constructor below copies UBSAN_OPTIONS while it is
 * intact, and __ubsan_default_options returns it: this file comes before
 * the UBSan runtime in LD_PRELOAD, so its definition is the one used.
 *
 * Built and preloaded by scripts/run-tests; not part of the extension.
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libintl.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

/* The ASan runtime's entry point; idempotent. */
extern void __asan_init(void);

static void
asan_early(void)
{
	static int done;

	if (!done)
	{
		done = 1;
		__asan_init();
	}
}

#define NEXT(name) dlsym(RTLD_NEXT, name)

static char ubsan_options[4096];

__attribute__((constructor)) static void
save_ubsan_options(void)
{
	const char *o = getenv("UBSAN_OPTIONS");

	if (o != NULL)
		strncpy(ubsan_options, o, sizeof(ubsan_options) - 1);
}

/* The UBSan runtime's hook for default options (see the header). */
const char *__ubsan_default_options(void);

const char *
__ubsan_default_options(void)
{
	return ubsan_options;
}

locale_t
newlocale(int mask, const char *locale, locale_t base)
{
	static locale_t (*real)(int, const char *, locale_t);

	asan_early();
	if (real == NULL)
		real = (locale_t(*)(int, const char *, locale_t))NEXT("newlocale");
	return real(mask, locale, base);
}

char *
setlocale(int category, const char *locale)
{
	static char *(*real)(int, const char *);

	asan_early();
	if (real == NULL)
		real = (char *(*)(int, const char *))NEXT("setlocale");
	return real(category, locale);
}

char *
bindtextdomain(const char *domain, const char *dir)
{
	static char *(*real)(const char *, const char *);

	asan_early();
	if (real == NULL)
		real = (char *(*)(const char *, const char *))NEXT("bindtextdomain");
	return real(domain, dir);
}

char *
textdomain(const char *domain)
{
	static char *(*real)(const char *);

	asan_early();
	if (real == NULL)
		real = (char *(*)(const char *))NEXT("textdomain");
	return real(domain);
}
