// The admin console's JSON API client. The admin token comes once in the address (?token=…): it is
// kept in sessionStorage for this tab and taken out of the address bar; every call sends it as
// `Authorization: Bearer` and also sends same-origin cookies, so a logged-in session works without one.

const TOKEN_KEY = "twinclass.admin.token";

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

function readToken() {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    try {
      sessionStorage.setItem(TOKEN_KEY, given);
    } catch {
      // storage disabled: the token lives in memory for this page only
    }
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    return given;
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

const token = readToken();

/** Whether this tab holds an admin token (else the calls ride on the login's cookie). */
export function adminToken() {
  return token;
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  if (token) out.Authorization = `Bearer ${token}`;
  return out;
}

export async function api(path, { method = "GET", body } = {}) {
  const resp = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`, data);
  return data;
}

/** Download an API file (CSV) with the same credentials, under `filename`. */
export async function download(path, filename) {
  const resp = await fetch(path, { credentials: "same-origin", headers: headers({ Accept: "text/csv" }) });
  if (!resp.ok) throw new ApiError(resp.status, `${resp.status} ${resp.statusText}`);
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
