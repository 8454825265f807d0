
/*
 * Copyright (C) modelreg authors
 *
 * GET /openapi.json and GET /docs, from memory: the document
 * (openapi/openapi.json) and the docs page (openapi/docs.html) are built
 * into the module, so the module and the document it serves never
 * disagree, and neither answer touches the database or a file.
 *
 * When nginx reads its configuration the document must parse as JSON
 * (with "openapi" and "paths"), or "nginx -t" and the start fail rather
 * than serve a broken document.  Each body's ETag (its sha256) and the
 * page's Content-Security-Policy, which allows its one inline script by
 * hash, are computed then, into static buffers: no pool of a cycle that a
 * failed reload would free.
 */


#include "ngx_http_modelreg.h"


#ifndef NGX_HTTP_MODELREG_OPENAPI_DIR
#error "config defines NGX_HTTP_MODELREG_OPENAPI_DIR"
#endif


/*
 * The files, as read-only data between two symbols.  ".incbin" reads them
 * when this file is assembled; a NUL after each keeps C string functions
 * within bounds.  Hidden: the module's own, not exported from the .so.
 */

#define NGX_HTTP_MODELREG_EMBED(name, file)                                   \
    __asm__ (                                                                 \
        "    .section .rodata\n"                                              \
        "    .global " #name "\n"                                             \
        "    .hidden " #name "\n"                                             \
        "    .type " #name ", @object\n"                                      \
        #name ":\n"                                                           \
        "    .incbin \"" NGX_HTTP_MODELREG_OPENAPI_DIR "/" file "\"\n"        \
        "    .global " #name "_end\n"                                         \
        "    .hidden " #name "_end\n"                                         \
        #name "_end:\n"                                                       \
        "    .byte 0\n"                                                       \
        "    .previous\n");                                                   \
    extern const u_char name[] __attribute__((visibility("hidden")));        \
    extern const u_char name##_end[] __attribute__((visibility("hidden")))

NGX_HTTP_MODELREG_EMBED(ngx_http_modelreg_openapi_json, "openapi.json");
NGX_HTTP_MODELREG_EMBED(ngx_http_modelreg_docs_html, "docs.html");


#define NGX_HTTP_MODELREG_ETAG_LEN  (sizeof("\"\"") - 1 + 2 * 32)

#define NGX_HTTP_MODELREG_CSP                                                 \
    "default-src 'none'; script-src 'self' 'sha256-%V'; "                     \
    "style-src 'self'; img-src 'self' data:; connect-src 'self'; "            \
    "font-src 'self'; base-uri 'none'; form-action 'none'; "                  \
    "frame-ancestors 'none'"


typedef struct {
    const u_char   *data;
    const u_char   *end;
    ngx_str_t       type;
    ngx_str_t       etag;
    u_char          etag_buf[NGX_HTTP_MODELREG_ETAG_LEN];
} ngx_http_modelreg_embedded_t;


static ngx_int_t ngx_http_modelreg_openapi_check(ngx_conf_t *cf);
static ngx_int_t ngx_http_modelreg_docs_csp(ngx_conf_t *cf);
static ngx_int_t ngx_http_modelreg_embedded_etag(ngx_conf_t *cf,
    ngx_http_modelreg_embedded_t *e);
static ngx_int_t ngx_http_modelreg_embedded_send(ngx_http_request_t *r,
    ngx_http_modelreg_embedded_t *e);


static ngx_http_modelreg_embedded_t  ngx_http_modelreg_openapi_doc = {
    ngx_http_modelreg_openapi_json, ngx_http_modelreg_openapi_json_end,
    ngx_string("application/json"), ngx_null_string, ""
};

static ngx_http_modelreg_embedded_t  ngx_http_modelreg_docs_page = {
    ngx_http_modelreg_docs_html, ngx_http_modelreg_docs_html_end,
    ngx_string("text/html; charset=utf-8"), ngx_null_string, ""
};

static ngx_str_t  ngx_http_modelreg_docs_policy;
static u_char     ngx_http_modelreg_docs_policy_buf[
                      sizeof(NGX_HTTP_MODELREG_CSP) + 64];

/* revalidate with the ETag: a new module may carry a new document */
static ngx_str_t  ngx_http_modelreg_no_cache = ngx_string("no-cache");


ngx_int_t
ngx_http_modelreg_openapi_init(ngx_conf_t *cf)
{
    if (ngx_http_modelreg_openapi_check(cf) != NGX_OK
        || ngx_http_modelreg_docs_csp(cf) != NGX_OK
        || ngx_http_modelreg_embedded_etag(cf, &ngx_http_modelreg_openapi_doc)
           != NGX_OK
        || ngx_http_modelreg_embedded_etag(cf, &ngx_http_modelreg_docs_page)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_openapi(ngx_http_request_t *r)
{
    return ngx_http_modelreg_embedded_send(r, &ngx_http_modelreg_openapi_doc);
}


ngx_int_t
ngx_http_modelreg_docs(ngx_http_request_t *r)
{
    if (ngx_http_modelreg_header_out(r, "Content-Security-Policy",
                                     &ngx_http_modelreg_docs_policy)
        == NULL)
    {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    return ngx_http_modelreg_embedded_send(r, &ngx_http_modelreg_docs_page);
}


static ngx_int_t
ngx_http_modelreg_openapi_check(ngx_conf_t *cf)
{
    json_t                        *doc;
    ngx_uint_t                     ok;
    json_error_t                   err;
    ngx_http_modelreg_embedded_t  *e;

    e = &ngx_http_modelreg_openapi_doc;

    doc = json_loadb((const char *) e->data, e->end - e->data,
                     JSON_REJECT_DUPLICATES, &err);
    if (doc == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "modelreg: the built-in openapi/openapi.json is not "
                      "JSON: %s at line %d, column %d",
                      err.text, err.line, err.column);
        return NGX_ERROR;
    }

    ok = json_is_object(doc)
         && json_is_string(json_object_get(doc, "openapi"))
         && json_is_object(json_object_get(doc, "paths"));

    json_decref(doc);

    if (!ok) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "modelreg: the built-in openapi/openapi.json is not "
                      "an OpenAPI document (no \"openapi\" or \"paths\")");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the page's one inline script, allowed by its sha256 and nothing else */

static ngx_int_t
ngx_http_modelreg_docs_csp(ngx_conf_t *cf)
{
    u_char                        *p, *start, *end;
    u_char                         md[32], b64[64];
    ngx_str_t                      src, hash;
    ngx_http_modelreg_embedded_t  *e;

    e = &ngx_http_modelreg_docs_page;
    p = (u_char *) e->data;
    end = (u_char *) e->end;

    start = ngx_strlcasestrn(p, end, (u_char *) "<script>",
                             sizeof("<script>") - 2);
    if (start == NULL) {
        goto failed;
    }

    start += sizeof("<script>") - 1;

    p = ngx_strlcasestrn(start, end, (u_char *) "</script>",
                         sizeof("</script>") - 2);
    if (p == NULL
        || ngx_strlcasestrn(p, end, (u_char *) "<script>",
                            sizeof("<script>") - 2)
           != NULL)
    {
        goto failed;
    }

    if (EVP_Digest(start, p - start, md, NULL, EVP_sha256(), NULL) != 1) {
        goto failed;
    }

    src.data = md;
    src.len = sizeof(md);
    hash.data = b64;
    ngx_encode_base64(&hash, &src);

    ngx_http_modelreg_docs_policy.data = ngx_http_modelreg_docs_policy_buf;
    ngx_http_modelreg_docs_policy.len =
        ngx_snprintf(ngx_http_modelreg_docs_policy_buf,
                     sizeof(ngx_http_modelreg_docs_policy_buf),
                     NGX_HTTP_MODELREG_CSP, &hash)
        - ngx_http_modelreg_docs_policy_buf;

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "modelreg: the built-in openapi/docs.html must have "
                  "exactly one inline <script>");
    return NGX_ERROR;
}


static ngx_int_t
ngx_http_modelreg_embedded_etag(ngx_conf_t *cf,
    ngx_http_modelreg_embedded_t *e)
{
    u_char  *p;
    u_char   md[32];

    if (EVP_Digest(e->data, e->end - e->data, md, NULL, EVP_sha256(), NULL)
        != 1)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "modelreg: EVP_Digest() failed");
        return NGX_ERROR;
    }

    p = e->etag_buf;
    *p++ = '"';
    p = ngx_hex_dump(p, md, sizeof(md));
    *p++ = '"';

    e->etag.data = e->etag_buf;
    e->etag.len = p - e->etag_buf;

    return NGX_OK;
}


/* nginx's not-modified filter answers If-None-Match with 304 */

static ngx_int_t
ngx_http_modelreg_embedded_send(ngx_http_request_t *r,
    ngx_http_modelreg_embedded_t *e)
{
    r->headers_out.etag = ngx_http_modelreg_header_out(r, "ETag", &e->etag);

    if (r->headers_out.etag == NULL
        || ngx_http_modelreg_header_out(r, "Cache-Control",
                                        &ngx_http_modelreg_no_cache)
           == NULL)
    {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    return ngx_http_modelreg_send(r, NGX_HTTP_OK, &e->type,
                                  (u_char *) e->data, e->end - e->data);
}

