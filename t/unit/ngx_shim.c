
/*
 * The few nginx core functions the pure sources call, for unit tests that
 * link no nginx objects.
 */


#include <ngx_config.h>
#include <ngx_core.h>


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    return strncasecmp((char *) s1, (char *) s2, n);
}
