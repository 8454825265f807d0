"""The bench's peer: modelreg's API subset written the way the Python
"Model Registry" service is built (FastAPI + uvicorn + asyncpg +
python-multipart), on modelreg's own PostgreSQL, schema and data.

Routes: GET /models/{id}, GET /models (filters, limit, page_token),
POST /models (multipart), GET|HEAD /models/{id}/files.  Statuses and
bodies as shared/API.md gives them for these routes, so that the same
wrk scripts drive both.

Made fast the usual ways: uvloop and httptools under uvicorn, no access
log, one asyncpg pool per worker (prepared statements, cached per
connection), the JSON of a model built by the database
(modelreg_model_json(), the function modelreg's handlers send) and sent
as it comes, one statement for a registration's row and its audit event,
the upload parsed as it streams (python-multipart's push parser) straight
into its file, hashed in the same pass.

Environment: PEER_DSN (libpq URL or keywords), PEER_STORE (a directory),
PEER_POOL (connections per worker, 16).
"""

import asyncio
import hashlib
import os
import re
import uuid

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from multipart.multipart import MultipartParser, parse_options_header
from starlette.background import BackgroundTask

DSN = os.environ["PEER_DSN"]
STORE = os.environ["PEER_STORE"]
POOL = int(os.environ.get("PEER_POOL", "16"))
URL_PREFIX = "fs:"

ID_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
SUBSTRING = ("name", "project_name", "category", "architecture", "precision")
EXACT = ("version", "origin", "project_id", "format", "target_device")
LIMIT_MAX = 1000
LIMIT_DEFAULT = 100

ZIP_TYPES = {"application/zip", "multipart/x-zip",
             "application/zip-compressed", "application/x-zip-compressed",
             "application/x-zip", "application/octet-stream"}
PRECISIONS = {"fp32", "fp16", "int8", "int4"}
# the optional text parts, in the insert's parameter order ($4..$17)
OPTIONAL = ("target_device", "created_date", "precision", "format", "origin",
            "project_id", "project_name", "category", "target_device_type",
            "score", "overview", "optimization_capabilities", "labels",
            "architecture")
KNOWN = {"file", "name", "version", "id", "size", *OPTIONAL}
FIELD_MAX = 64 * 1024   # bytes of one text part
EOCD_TAIL = 65557       # the end-of-central-directory record lies here
FILE_FLUSH = 256 * 1024  # bytes of the file part written at a time

GET_SQL = "SELECT modelreg_model_json(m, $2) FROM models m WHERE m.id = $1"

FILES_SQL = ("SELECT storage_key, sha256, file_name, size FROM models"
             " WHERE id = $1")

# modelreg's registration statement (ngx_http_modelreg_register.c) less
# its clean-up queue's rows, which the peer does not keep
INSERT_SQL = (
    "WITH m AS ("
    "INSERT INTO models (id, name, version, target_device, created_date,"
    " registered_at, last_updated_at, precision, format, origin,"
    " project_id, project_name, category, target_device_type, score,"
    " overview, optimization_capabilities, labels, architecture, size,"
    " sha256, file_name, storage_key)"
    " VALUES ($1, $2, $3, coalesce($4, 'CPU'),"
    " coalesce($5, modelreg_ts(now())), now(), now(),"
    " coalesce($6, 'fp32'), $7, $8, $9, $10, $11, $12,"
    " coalesce($13::float8, 0), coalesce($14::jsonb, '{}'),"
    " coalesce($15::jsonb, '{}'), coalesce($16::jsonb, '[]'), $17, $18,"
    " $19, $20, $21)"
    " RETURNING *), "
    "a AS (INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " SELECT 'model.create', m.id, '-', $22, $23, 201,"
    " jsonb_build_object('name', m.name, 'version', m.version,"
    " 'precision', m.precision, 'size', m.size, 'sha256', m.sha256,"
    " 'file_name', m.file_name) FROM m) "
    "SELECT modelreg_model_json(m, $24) FROM m")

CONFLICT_SQL = (
    "SELECT id FROM models WHERE id = $1 OR (name, version, precision,"
    " project_id, project_name) IS NOT DISTINCT FROM"
    " ($2, $3, coalesce($4, 'fp32'), $5, $6) LIMIT 1")

DOWNLOAD_SQL = (
    "INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " VALUES ('model.download', $1, '-', $2, $3, 200,"
    " jsonb_build_object('bytes', $4::bigint))")

JSON = "application/json"

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
pool = None


@app.on_event("startup")
async def startup():
    global pool
    pool = await asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL)
    for sub in (".tmp", "peer"):
        os.makedirs(os.path.join(STORE, sub), exist_ok=True)


@app.on_event("shutdown")
async def shutdown():
    await pool.close()


def request_id():
    return os.urandom(16).hex()


def detail(status, message, rid, **headers):
    # the JSON of a message from this file: no quote or backslash in it
    # but a model id's, which the ID format keeps plain
    return Response('{"detail":"%s"}' % message, status, media_type=JSON,
                    headers={"x-request-id": rid, **headers})


def bad_id(rid):
    return detail(400, "Invalid format for model ID.", rid)


class ZipResponse(FileResponse):
    # 1 MiB reads (each a thread hop in Starlette) rather than 64 KiB
    chunk_size = 1 << 20


@app.get("/models/{model_id}")
async def get_model(model_id: str):
    rid = request_id()
    if not ID_RE.fullmatch(model_id):
        return bad_id(rid)
    body = await pool.fetchval(GET_SQL, model_id, URL_PREFIX)
    if body is None:
        return detail(404, "Model not found.", rid)
    return Response(body, media_type=JSON, headers={"x-request-id": rid})


def like_escape(s):
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def token_encode(us, model_id):
    # as modelreg's: "<registration time in us>.<id>" (ids are URL-safe)
    return f"{us}.{model_id}"


def token_decode(token):
    us, model_id = token.split(".", 1)
    if not ID_RE.fullmatch(model_id):
        raise ValueError(token)
    return int(us), model_id


@app.get("/models")
async def list_models(request: Request):
    rid = request_id()
    args = dict(request.query_params)
    unknown = [k for k in request.query_params.keys()
               if k not in SUBSTRING and k not in EXACT
               and k not in ("limit", "page_token")]
    if unknown:
        return detail(422, "Invalid query parameter(s): "
                      + ", ".join(dict.fromkeys(unknown)), rid)
    limit = LIMIT_DEFAULT
    if args.get("limit"):
        try:
            limit = int(args["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= LIMIT_MAX:
            return detail(400, "Invalid limit: must be an integer from 1 to"
                          " 1000.", rid)
    sql = ["SELECT modelreg_model_json(m, $1), modelreg_us(m.registered_at),"
           " m.id FROM models m WHERE true"]
    params = [URL_PREFIX]
    for key in SUBSTRING + EXACT:
        value = args.get(key)
        if not value:
            continue
        if key in SUBSTRING:
            params.append(like_escape(value))
            sql.append(f" AND m.{key} ILIKE '%' || ${len(params)} || '%'")
        else:
            params.append(value)
            sql.append(f" AND m.{key} = ${len(params)}")
    filtered = len(params) > 1
    token = args.get("page_token")
    if token:
        try:
            params.extend(token_decode(token))
        except ValueError:
            return detail(400, "Invalid page_token.", rid)
        sql.append(f" AND (m.registered_at, m.id) > (modelreg_from_us("
                   f"${len(params) - 1}::bigint), ${len(params)})")
    sql.append(f" ORDER BY m.registered_at, m.id LIMIT {limit + 1}")
    rows = await pool.fetch("".join(sql), *params)
    if not rows and filtered and not token:
        return detail(404, "Model(s) not found.", rid)
    headers = {"x-request-id": rid}
    if len(rows) > limit:
        rows = rows[:limit]
        query = "&".join(f"{k}={v}" for k, v in
                         request.query_params.items() if k != "page_token")
        headers["link"] = (f"</models?{query}&page_token="
                           f"{token_encode(rows[-1][1], rows[-1][2])}>;"
                           ' rel="next"')
    return Response("[" + ",".join(r[0] for r in rows) + "]",
                    media_type=JSON, headers=headers)


class Upload:
    """One POST /models body, parsed as it arrives: text parts kept,
    the file part written to a temporary file and hashed."""

    def __init__(self, boundary):
        self.fields = {}
        self.order = []
        self.file = None        # (its Content-Type, its file name)
        self.size = 0
        self.sha = hashlib.sha256()
        self.buf = bytearray()
        self.head = b""
        self.tail = b""
        self.fd = None
        self.tmp = None
        self.error = None
        self._hname = b""
        self._hvalue = b""
        self._headers = {}
        self._part = None
        self._value = None
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin,
            "on_header_field": self._hfield,
            "on_header_value": self._hval,
            "on_header_end": self._hend,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        })

    def _begin(self):
        self._headers = {}
        self._hname = self._hvalue = b""

    def _hfield(self, data, start, end):
        self._hname += data[start:end]

    def _hval(self, data, start, end):
        self._hvalue += data[start:end]

    def _hend(self):
        self._headers[self._hname.lower()] = self._hvalue
        self._hname = self._hvalue = b""

    def _headers_done(self):
        _, opts = parse_options_header(
            self._headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        self._part = name
        self.order.append(name)
        if name == "file" and b"filename" in opts and self.fd is None:
            ctype = self._headers.get(b"content-type", b"text/plain")
            self.file = (ctype.decode("latin-1"),
                         opts[b"filename"].decode("utf-8", "replace"))
            self.tmp = os.path.join(STORE, ".tmp", uuid.uuid4().hex)
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                              0o644)
            self._value = None
        else:
            self._value = bytearray()

    def _data(self, data, start, end):
        # the parser calls here at every CR of the file (its boundary's
        # first byte), i.e. every ~256 bytes of a binary file: gathered
        # and written, hashed and looked at in FILE_FLUSH pieces
        if self._value is None:
            self.buf += memoryview(data)[start:end]
            if len(self.buf) >= FILE_FLUSH:
                self._flush()
        elif len(self._value) + end - start <= FIELD_MAX:
            self._value += data[start:end]
        else:
            self.error = "Malformed multipart body."

    def _flush(self):
        view = memoryview(self.buf)
        while view:
            view = view[os.write(self.fd, view):]
        self.sha.update(self.buf)
        self.size += len(self.buf)
        if len(self.head) < 4:
            self.head += self.buf[:4 - len(self.head)]
        self.tail = (self.tail + self.buf[-EOCD_TAIL:])[-EOCD_TAIL:]
        self.buf = bytearray()

    def _end(self):
        if self._value is not None:
            self.fields[self._part] = bytes(self._value)
        elif self.fd is not None:
            self._flush()
        self._value = None

    def discard(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


def store(fd, tmp, path):
    """The file made durable under its key: fsync, rename, fsync of the
    directory (as modelreg's fs store does); in a thread."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def file_name(name):
    name = re.split(r"[/\\]", name)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).lstrip(".")
    name = name.encode()[:255].decode("utf-8", "ignore")
    return name or "model.zip"


@app.post("/models")
async def create_model(request: Request):
    rid = request_id()
    ctype, opts = parse_options_header(request.headers.get("content-type",
                                                           ""))
    if ctype != b"multipart/form-data" or not opts.get(b"boundary"):
        return detail(400, "Malformed multipart body.", rid)
    up = Upload(opts[b"boundary"])
    try:
        async for chunk in request.stream():
            up.parser.write(chunk)
            if up.error:
                break
        up.parser.finalize()
        return await register(request, up, rid)
    finally:
        up.discard()


async def register(request, up, rid):
    if up.error:
        return detail(400, up.error, rid)
    fields = {k: v.decode() for k, v in up.fields.items() if v}
    missing = [k for k in ("file", "name", "version")
               if (k == "file" and up.file is None)
               or (k != "file" and k not in fields)]
    if missing:
        return detail(422, "Field required: " + ", ".join(missing), rid)
    unknown = [k for k in dict.fromkeys(up.order) if k not in KNOWN]
    if unknown:
        return detail(422, "Unsupported key(s) found: " + ", ".join(unknown),
                      rid)
    ftype = up.file[0].split(";")[0].strip().lower()
    if ftype not in ZIP_TYPES:
        return detail(422, f"Unsupported file type found: {ftype}", rid)
    if (up.head not in (b"PK\x03\x04", b"PK\x05\x06")
            or b"PK\x05\x06" not in up.tail):
        return detail(422, "Uploaded file is not a ZIP archive.", rid)
    model_id = fields.get("id") or str(uuid.uuid4())
    if not ID_RE.fullmatch(model_id):
        return bad_id(rid)
    precision = fields.get("precision")
    if precision is not None:
        if precision.lower() not in PRECISIONS:
            return detail(400, f"{precision} is not a supported precision.",
                          rid)
        fields["precision"] = precision.lower()
    try:
        score = float(fields["score"]) if "score" in fields else None
    except ValueError:
        return detail(422, "score must be a number.", rid)

    key = f"peer/{model_id}"
    fd, up.fd = up.fd, None
    await asyncio.to_thread(store, fd, up.tmp, os.path.join(STORE, key))
    up.tmp = None
    params = [model_id, fields["name"], fields["version"]]
    params += [score if k == "score" else fields.get(k) for k in OPTIONAL]
    params += [up.size, up.sha.hexdigest(), file_name(up.file[1]), key, rid,
               request.client.host if request.client else None, URL_PREFIX]
    try:
        body = await pool.fetchval(INSERT_SQL, *params)
    except asyncpg.UniqueViolationError:
        os.unlink(os.path.join(STORE, key))
        other = await pool.fetchval(
            CONFLICT_SQL, model_id, fields["name"], fields["version"],
            fields.get("precision"), fields.get("project_id"),
            fields.get("project_name"))
        return detail(409, "The requested action could not be completed due"
                      f" to a conflict with model '{other}'.", rid)
    except BaseException:
        os.unlink(os.path.join(STORE, key))
        raise
    headers = {"x-request-id": rid, "location": f"/models/{model_id}"}
    if "application/json" in request.headers.get("accept", ""):
        return Response(body, 201, media_type=JSON, headers=headers)
    return Response(model_id, 201, media_type="text/plain", headers=headers)


async def audit_download(model_id, rid, addr, size):
    await pool.execute(DOWNLOAD_SQL, model_id, rid, addr, size)


@app.api_route("/models/{model_id}/files", methods=["GET", "HEAD"])
async def get_files(model_id: str, request: Request):
    rid = request_id()
    if not ID_RE.fullmatch(model_id):
        return bad_id(rid)
    row = await pool.fetchrow(FILES_SQL, model_id)
    if row is None:
        return detail(404, "Model not found.", rid)
    path = os.path.join(STORE, row["storage_key"])
    if not os.path.isfile(path):
        return detail(503, "Object storage unavailable.", rid)
    addr = request.client.host if request.client else None
    return ZipResponse(
        path, media_type="application/zip", filename=row["file_name"],
        method=request.method,
        headers={"x-request-id": rid, "etag": f'"{row["sha256"]}"'},
        background=None if request.method == "HEAD" else BackgroundTask(
            audit_download, model_id, rid, addr, row["size"]))
