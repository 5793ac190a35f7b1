// The console reads the node's own API: AuditService and LedgerService over
// Connect's JSON protocol (POST with a JSON body). Nothing here writes.
//
// AuditService answers regulators only: the console sends the bearer token
// the visitor signed in with (dcep token --as REGULATOR --node THIS-NODE),
// kept in this tab's sessionStorage only. Without one it reads only the
// public LedgerService/Status (network health).

const base = '/dcep.node.v1.'
const tokenKey = 'dcep-console-token'

export const getToken = () => sessionStorage.getItem(tokenKey) || ''
export const setToken = (t) => (t ? sessionStorage.setItem(tokenKey, t.trim()) : sessionStorage.removeItem(tokenKey))

export async function call(service, method, body = {}) {
  const headers = { 'Content-Type': 'application/json' }
  const tok = getToken()
  if (tok) headers.Authorization = `Bearer ${tok}`
  const res = await fetch(`${base}${service}/${method}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    cache: 'no-store',
  })
  const text = await res.text()
  let msg
  try {
    msg = text ? JSON.parse(text) : {}
  } catch {
    throw new Error(`${method}: HTTP ${res.status}`)
  }
  if (!res.ok) {
    throw new Error(`${method}: ${msg.message || msg.code || 'HTTP ' + res.status}`)
  }
  return msg
}

export const audit = (method, body) => call('AuditService', method, body)
export const ledger = (method, body) => call('LedgerService', method, body)

// Protobuf JSON writes 64-bit integers as strings: keep them exact.
export function big(v) {
  if (v === undefined || v === null || v === '') return 0n
  return BigInt(v)
}

export function num(v) {
  return Number(v || 0)
}

// yuan formats fen as "¥1,234.56".
export function yuan(fen) {
  const f = big(fen)
  const neg = f < 0n
  const a = neg ? -f : f
  const whole = (a / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  const cents = (a % 100n).toString().padStart(2, '0')
  return `${neg ? '-' : ''}¥${whole}.${cents}`
}

// beijing formats ledger time (Unix ms) in Beijing time (UTC+8).
export function beijing(ms, withSeconds = true) {
  const t = num(ms)
  if (!t) return '—'
  const d = new Date(t + 8 * 3600 * 1000)
  const p = (n) => String(n).padStart(2, '0')
  const s = `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`
  return withSeconds ? `${s}:${p(d.getUTCSeconds())}` : s
}

export function hex(b64, n = 8) {
  if (!b64) return ''
  const bin = atob(b64)
  let out = ''
  for (let i = 0; i < Math.min(bin.length, n); i++) out += bin.charCodeAt(i).toString(16).padStart(2, '0')
  return out
}

export const roleName = (r) =>
  r === 'NODE_ROLE_VOTER' ? 'voter' : r === 'NODE_ROLE_REGULATOR' ? 'regulator' : 'non-member'
