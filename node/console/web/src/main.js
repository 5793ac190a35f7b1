import { h, render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import htm from 'htm'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import './style.css'
import { audit, beijing, big, getToken, hex, ledger, num, roleName, setToken, yuan } from './api.js'

const html = htm.bind(h)

// poll calls fn now and every ms milliseconds while the page is open, and
// keeps its last answer or error.
function usePoll(fn, ms) {
  const [state, setState] = useState({ data: null, error: null, at: 0 })
  useEffect(() => {
    let alive = true
    let timer
    const tick = async () => {
      try {
        const data = await fn()
        if (alive) setState({ data, error: null, at: Date.now() })
      } catch (e) {
        if (alive) setState((s) => ({ ...s, error: String(e.message || e) }))
      }
      if (alive) timer = setTimeout(tick, ms)
    }
    tick()
    return () => {
      alive = false
      clearTimeout(timer)
    }
  }, [])
  return state
}

// App: a visitor who has not signed in sees the public network health
// only; a regulator who has (its token) sees the whole console.
function App() {
  const [token, setTok] = useState(getToken())
  const signIn = (t) => {
    setToken(t)
    setTok(getToken())
  }
  return token ? html`<${Console} signOut=${() => signIn('')} />` : html`<${Public} signIn=${signIn} />`
}

function SignIn({ signIn }) {
  const [v, setV] = useState('')
  return html`<form class="signin" data-testid="sign-in-form" onSubmit=${(e) => {
    e.preventDefault()
    if (v.trim()) signIn(v)
  }}>
    <label>Regulator token <input data-testid="token-input" type="password" autocomplete="off" value=${v} onInput=${(e) => setV(e.target.value)}
      placeholder="dcep token --as regulator-1 --node THIS-NODE" /></label>
    <button type="submit" data-testid="sign-in">Sign in</button>
  </form>`
}

// Public: what anyone may see — the network's health from the public
// Status (no wallet, payment or audit data).
function Public({ signIn }) {
  const status = usePoll(() => ledger('Status', {}), 1000)
  const st = status.data
  const me = st?.node
  return html`
    <header>
      <h1>dcep <span class="sub">regulator console</span></h1>
      <div class="meta">
        ${me
          ? html`<span>network <b data-testid="chain-id">${me.chainId}</b></span>
              <span>node <b data-testid="self-name">${me.name}</b> (${roleName(me.role)})</span>
              <span>applied index <b data-testid="self-applied">${me.appliedIndex || 0}</b></span>`
          : html`<span>connecting…</span>`}
      </div>
    </header>
    <div class="banner" data-testid="signed-out">
      Not signed in: public network health only. Regulators sign in with a token for this node
      (<code>dcep token --as REGULATOR --node ${location.origin}</code>).
      <${SignIn} signIn=${signIn} />
    </div>
    ${status.error && html`<div class="banner error" role="alert">This node does not answer: ${status.error}</div>`}
    <${NetworkAlarms} st=${st} />
    <main>
      <section class="wide">
        <h2>Network health</h2>
        <${Network} st=${st} />
      </section>
    </main>
    <footer>Served by ${me?.name || 'the node'}; refreshes every second.</footer>
  `
}

function Console({ signOut }) {
  const overview = usePoll(() => audit('Overview', { throughputSeconds: 600 }), 1000)
  const supply = usePoll(() => audit('Supply', { maxAgeMs: '4000' }), 5000)
  const large = usePoll(() => audit('LargePayments', { newestFirst: true, limit: 20 }), 3000)
  const frozen = usePoll(() => audit('FrozenWallets', { limit: 50 }), 3000)
  const activity = usePoll(() => audit('BankActivity', {}), 5000)
  const divergence = usePoll(() => audit('Divergence', {}), 2000)
  const incidents = usePoll(() => audit('Incidents', {}), 3000)
  const offline = usePoll(() => audit('Offline', {}), 5000)
  const campaigns = usePoll(() => audit('Campaigns', {}), 3000)

  const st = overview.data?.status
  const me = st?.node
  return html`
    <header>
      <h1>dcep <span class="sub">regulator console</span></h1>
      <div class="meta">
        ${me
          ? html`<span>network <b data-testid="chain-id">${me.chainId}</b></span>
              <span>node <b data-testid="self-name">${me.name}</b> (${roleName(me.role)})</span>
              <span>ledger time <b>${beijing(me.ledgerTimeMs)}</b> UTC+8</span>
              <span>applied index <b data-testid="self-applied">${me.appliedIndex || 0}</b></span>`
          : html`<span>connecting…</span>`}
        <button data-testid="sign-out" onClick=${signOut}>Sign out</button>
      </div>
    </header>
    ${overview.error && html`<div class="banner error" role="alert" data-testid="console-error">This node does not answer: ${overview.error}</div>`}
    <${DivergenceBanner} d=${divergence.data} />
    <${NetworkAlarms} st=${st} />
    <main>
      <section class="wide">
        <h2>Network health</h2>
        <${Network} st=${st} div=${divergence.data} />
      </section>
      <section class="wide">
        <h2>Throughput <span class="sub">transactions applied per second on ${me?.name || 'this node'}, last 10 minutes</span></h2>
        <${Throughput} points=${overview.data?.throughput || []} />
      </section>
      <section class="wide">
        <h2>Money supply</h2>
        <${Supply} s=${supply.data} error=${supply.error} />
      </section>
      <section>
        <h2>Large payments <span class="sub">at or above ${yuan(overview.data?.largeThresholdFen || 0)}, newest first</span></h2>
        <${Large} r=${large.data} error=${large.error} />
      </section>
      <section>
        <h2>Bank activity <span class="sub">per Beijing day, payer's bank</span></h2>
        <${Activity} r=${activity.data} error=${activity.error} />
      </section>
      <section>
        <h2>Frozen wallets</h2>
        <${Frozen} r=${frozen.data} error=${frozen.error} />
      </section>
      <section class="wide">
        <h2>Double-spend incidents <span class="sub">offline payments (SPEC §4): proof on the ledger, who paid the payees</span></h2>
        <${Incidents} r=${incidents.data} error=${incidents.error} />
      </section>
      <section class="wide">
        <h2>Red-packet campaigns</h2>
        <${Campaigns} r=${campaigns.data} error=${campaigns.error} />
      </section>
      <section class="wide">
        <h2>Offline money <span class="sub">in purses on devices, and who paid the payees, per bank that certified the purse</span></h2>
        <${Offline} r=${offline.data} error=${offline.error} />
      </section>
    </main>
    <footer>Read-only. Served by ${me?.name || 'the node'} from its own ledger; refreshes every second. Amounts in yuan; times in Beijing time (UTC+8).</footer>
  `
}

function DivergenceBanner({ d }) {
  const live = (d?.divergences || []).filter((x) => x.ongoing)
  if (!d || (!live.length && !d.selfSuspect)) return null
  return html`<div class="banner error" role="alert" data-testid="divergence-alert">
    <b>State divergence.</b>
    ${d.selfSuspect && html` This node's state hash differs from most peers': its own ledger is the likely culprit.`}
    ${live.map(
      (x) => html` <span data-testid="diverged-peer">${x.peer}</span> differs from ${d.node} since index ${x.firstIndex}
        (ours ${hex(x.ourHash)}…, theirs ${hex(x.theirHash)}…, first seen ${beijing(x.firstSeenMs)}).`,
    )}
  </div>`
}

// NetworkAlarms: what any node says about the network's trust: a second
// process holding a member's key (p2p/DESIGN.md, "One process per
// identity"), a clock beyond the bound of the voters' median clock.
function NetworkAlarms({ st }) {
  if (!st) return null
  const all = [st.node, ...(st.peers || []).map((p) => p.status).filter(Boolean)]
  const dups = []
  for (const n of all) for (const d of n.duplicateIdentities || []) dups.push({ by: n.name, ...d })
  const clocks = all.filter((n) => n.clockWarning)
  if (!dups.length && !clocks.length) return null
  return html`<div class="banner error" role="alert" data-testid="network-alarm">
    ${dups.map(
      (d) => html`<div data-testid="duplicate-identity"><b>Duplicate identity.</b> ${d.by} refused
        ${num(d.refused)} connection(s) from a second live process holding <b>${d.name}</b>'s key (from ${d.refusedAddr};
        kept ${d.keptAddr}; last ${beijing(d.lastMs)}).</div>`,
    )}
    ${clocks.map((n) => html`<div data-testid="clock-warning"><b>Clock.</b> ${n.name}: ${n.clockWarning}</div>`)}
  </div>`
}

// clockCell: a node's clock against the voters' median clock, which ledger
// time is stamped from.
function clockCell(s) {
  if (!s.name || !s.clockKnown) return html`<span class="muted">—</span>`
  const ms = num(s.clockOffsetMs)
  const text = `${ms >= 0 ? '+' : '−'}${Math.abs(ms) >= 10000 ? Math.round(Math.abs(ms) / 1000) + ' s' : Math.abs(ms) + ' ms'}`
  return s.clockWarning ? html`<span class="bad" title=${s.clockWarning}>${text}</span>` : html`<span class="good">${text}</span>`
}

function Network({ st, div }) {
  if (!st) return html`<p class="muted">loading…</p>`
  const checks = {}
  for (const c of div?.peers || []) checks[c.peer] = c
  // Lag: how far behind the leader's ledger a node's is, in log entries.
  const leaderApplied = (() => {
    const all = [st.node, ...(st.peers || []).map((p) => p.status).filter(Boolean)]
    const l = all.find((n) => n.name === st.node.leader)
    return l ? num(l.appliedIndex) : num(st.node.appliedIndex)
  })()
  const rows = [
    { name: st.node.name, role: st.node.role, s: st.node, self: true },
    ...(st.peers || []).map((p) => ({ name: p.name, role: p.role, s: p.status, p })),
  ]
  const voters = rows.filter((r) => r.role === 'NODE_ROLE_VOTER').length
  const regs = rows.filter((r) => r.role === 'NODE_ROLE_REGULATOR').length
  const ready = rows.filter((r) => r.s?.ready && !(r.p && r.p.error)).length
  return html`
    <p class="summary">
      <span data-testid="voters">${voters}</span> voters, <span data-testid="regulators">${regs}</span> regulator${regs === 1 ? '' : 's'};
      leader <b data-testid="leader">${st.node.leader || 'none'}</b>; ${ready} of ${rows.length} ready
    </p>
    <table class="nodes">
      <thead><tr><th>node</th><th>role</th><th>operator</th><th>raft</th><th class="r">applied</th><th class="r">lag</th><th>ready</th><th>state hash</th><th class="r" title="this node's clock minus the voters' median clock">clock</th><th class="r">heard</th></tr></thead>
      <tbody>
        ${rows.map((r) => {
          const s = r.s || {}
          const lag = s.name ? Math.max(0, leaderApplied - num(s.appliedIndex)) : null
          const c = checks[r.name]
          const hash = r.self
            ? html`<span class="muted">${hex(s.stateHash)}…</span>`
            : c && !c.error
              ? c.diverged
                ? html`<span class="bad">DIVERGED at ${c.index}</span>`
                : html`<span class="good">agrees at ${c.index}</span>`
              : html`<span class="muted">${c?.error || '—'}</span>`
          const unreachable = r.p && r.p.error
          return html`<tr data-node=${r.name} data-role=${roleName(r.role)} class=${unreachable ? 'down' : ''}>
            <td><b>${r.name}</b>${r.self ? html` <span class="tag">this node</span>` : ''}${s.name && st.node.leader === r.name ? html` <span class="tag lead">leader</span>` : ''}</td>
            <td>${roleName(r.role)}</td>
            <td>${s.operator || ''}</td>
            <td>${unreachable ? html`<span class="bad">unreachable</span>` : s.raftState || '—'}</td>
            <td class="r">${s.appliedIndex || 0}</td>
            <td class="r">${lag === null ? '—' : lag}</td>
            <td>${s.ready && !unreachable ? html`<span class="good">yes</span>` : html`<span class="bad">no</span>`}</td>
            <td>${hash}</td>
            <td class="r" data-testid="clock">${clockCell(s)}</td>
            <td class="r">${r.self ? 'now' : r.p?.ageMs !== undefined ? (num(r.p.ageMs) / 1000).toFixed(1) + ' s' : '—'}</td>
          </tr>`
        })}
      </tbody>
    </table>`
}

function Throughput({ points }) {
  const el = useRef(null)
  const plot = useRef(null)
  useEffect(() => {
    const width = () => Math.max(300, (el.current?.clientWidth || 800) - 8)
    plot.current = new uPlot(
      {
        width: width(),
        height: 200,
        // Times in Beijing time, like the rest of the page.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Asia/Shanghai'),
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(5, max * 1.1)] } },
        axes: [{}, { label: 'tx/s', size: 60 }],
        series: [{}, { label: 'tx/s', stroke: '#c62828', fill: 'rgba(198,40,40,0.08)', width: 1.5, points: { show: false } }],
        legend: { show: true },
      },
      [[], []],
      el.current,
    )
    const onResize = () => plot.current.setSize({ width: width(), height: 200 })
    window.addEventListener('resize', onResize)
    return () => {
      window.removeEventListener('resize', onResize)
      plot.current.destroy()
    }
  }, [])
  useEffect(() => {
    if (!plot.current) return
    // The last point is the current second, still counting: leave it out.
    const full = points.slice(0, -1)
    const xs = full.map((p) => num(p.timeMs) / 1000)
    const ys = full.map((p) => num(p.txs))
    plot.current.setData([xs, ys])
  }, [points])
  const full = points.slice(0, -1)
  const total = full.reduce((a, p) => a + num(p.txs), 0)
  const last10 = full.slice(-10).reduce((a, p) => a + num(p.txs), 0) / 10
  return html`<div>
    <div ref=${el} class="chart" data-testid="throughput-chart"></div>
    <p class="muted">${total} transactions in the last ${full.length} s; ${last10.toFixed(1)} tx/s over the last 10 s</p>
  </div>`
}

function Supply({ s, error }) {
  if (!s) return html`<p class="muted">${error || 'auditing…'}</p>`
  return html`
    ${s.invariantHolds
      ? html`<p class="good big" data-testid="invariant">Invariant holds: issued − returned = unspent + offline escrow + red-packet escrow</p>`
      : html`<p class="bad big" data-testid="invariant">INVARIANT DOES NOT HOLD: ${s.invariantError}</p>`}
    <div class="figures">
      <${Fig} label="issued" fen=${s.issuedFen} id="supply-issued" />
      <${Fig} label="returned" fen=${s.returnedFen} id="supply-returned" />
      <${Fig} label="outstanding (issued − returned)" fen=${s.outstandingFen} id="supply-outstanding" strong />
      <${Fig} label="unspent outputs" fen=${s.unspentFen} id="supply-unspent" />
      <${Fig} label="offline escrow" fen=${s.offlineEscrowFen} id="supply-offline" />
      <${Fig} label="red-packet escrow" fen=${s.campaignEscrowFen} id="supply-campaign" />
      <${Fig} label="frozen wallets hold" fen=${s.frozenFen} id="supply-frozen" />
    </div>
    <p class="muted">${s.outputs || 0} outputs in ${s.wallets || 0} wallets; audited at index ${s.freshness?.appliedIndex || 0} by ${s.freshness?.node} at ${beijing(s.computedAtMs)} (wall clock, UTC+8)</p>
    <table>
      <thead><tr><th>bank</th><th class="r">issued</th><th class="r">returned</th><th class="r">outstanding</th><th class="r">in wallets</th><th class="r">of which reserve</th><th class="r">offline escrow</th><th class="r">campaign escrow</th><th class="r">wallets</th><th class="r">frozen</th></tr></thead>
      <tbody>
        ${(s.banks || []).map(
          (b) => html`<tr data-bank=${b.bankId}>
            <td><b>${b.bankId}</b></td><td class="r">${yuan(b.issuedFen)}</td><td class="r">${yuan(b.returnedFen)}</td>
            <td class="r">${yuan(b.outstandingFen)}</td><td class="r">${yuan(b.walletsFen)}</td><td class="r">${yuan(b.reserveFen)}</td>
            <td class="r">${yuan(b.offlineEscrowFen)}</td><td class="r">${yuan(b.campaignEscrowFen)}</td>
            <td class="r">${b.wallets || 0}</td><td class="r">${b.frozenWallets || 0}</td>
          </tr>`,
        )}
      </tbody>
    </table>`
}

function Fig({ label, fen, id, strong }) {
  return html`<div class=${'fig' + (strong ? ' strong' : '')}>
    <div class="v" data-testid=${id} data-fen=${big(fen).toString()}>${yuan(fen)}</div>
    <div class="l">${label}</div>
  </div>`
}

function Large({ r, error }) {
  if (!r) return html`<p class="muted">${error || 'loading…'}</p>`
  const ps = r.payments || []
  if (!ps.length) return html`<p class="muted" data-testid="large-none">none yet</p>`
  return html`<table data-testid="large-payments">
    <thead><tr><th>time (UTC+8)</th><th>kind</th><th>payer</th><th>payees</th><th class="r">amount</th></tr></thead>
    <tbody>
      ${ps.map(
        (p) => html`<tr>
          <td>${beijing(p.timeMs)}</td><td>${p.kind}</td><td>${p.payer} <span class="muted">${p.payerBank}</span></td>
          <td>${(p.payees || []).map((l) => html`<div>${l.walletId} <span class="muted">${l.bankId}</span></div>`)}</td>
          <td class="r">${yuan(p.amountFen)}</td>
        </tr>`,
      )}
    </tbody>
  </table>`
}

function Activity({ r, error }) {
  if (!r) return html`<p class="muted">${error || 'loading…'}</p>`
  const days = (r.days || []).slice().reverse()
  if (!days.length) return html`<p class="muted">no activity from ${r.fromDate} to ${r.toDate}</p>`
  return html`<table>
    <thead><tr><th>date</th><th>bank</th><th class="r">transactions</th><th class="r">payments</th><th class="r">volume</th><th class="r">large</th></tr></thead>
    <tbody>
      ${days.map(
        (d) => html`<tr>
          <td>${d.date}</td><td>${d.bankId}</td><td class="r">${d.txCount || 0}</td><td class="r">${d.paymentCount || 0}</td>
          <td class="r">${yuan(d.volumeFen)}</td><td class="r">${d.largeCount || 0}</td>
        </tr>`,
      )}
    </tbody>
  </table>`
}

function Frozen({ r, error }) {
  if (!r) return html`<p class="muted">${error || 'loading…'}</p>`
  const ws = r.wallets || []
  if (!ws.length) return html`<p class="muted">none</p>`
  return html`<table data-testid="frozen-wallets">
    <thead><tr><th>wallet</th><th>bank</th><th>since (UTC+8)</th><th>reason</th><th class="r">holds</th></tr></thead>
    <tbody>
      ${ws.map(
        (w) => html`<tr>
          <td>${w.frozen.walletId}</td><td>${w.frozen.bankId}</td><td>${beijing(w.frozen.sinceMs)}</td>
          <td>${w.frozen.reason} <span class="muted">(${w.frozen.source})</span></td><td class="r">${yuan(w.balanceFen)}</td>
        </tr>`,
      )}
    </tbody>
  </table>`
}

const lower = (s, prefix) => (s || '').replace(prefix, '').toLowerCase().replace(/_/g, ' ')

function Incidents({ r, error }) {
  if (!r) return html`<p class="muted">${error || 'loading…'}</p>`
  const t = r.totals || {}
  const list = (r.incidents || []).slice(-20).reverse()
  return html`
    <p data-testid="incident-totals">
      <b>${t.incidents || 0}</b> incident${num(t.incidents) === 1 ? '' : 's'}: ${t.settled || 0} settled in full, ${t.paidLate || 0} paid late, ${t.underfunded || 0} underfunded;
      claimed ${yuan(t.claimFen)}, paid from purse escrow ${yuan(t.fromEscrowFen)}, from payers' funds ${yuan(t.fromPayerFen)},
      from bank guarantees ${yuan(t.fromGuaranteeFen)}, from bank reserves ${yuan(t.fromReserveFen)}, by banks later ${yuan(t.paidLaterFen)};
      payers' debt ${yuan(t.debtFen)}; banks still owe ${yuan(t.unpaidFen)}
    </p>
    ${list.length
      ? html`<table data-testid="incidents">
          <thead><tr><th class="r">#</th><th>time (UTC+8)</th><th>kind</th><th>payer</th><th>payees</th><th class="r">claim</th><th class="r">escrow</th><th class="r">payer</th><th class="r">guarantee</th><th class="r">reserve</th><th class="r">paid later</th><th class="r">unpaid</th><th>status</th><th>proof</th></tr></thead>
          <tbody>
            ${list.map(
              (i) => html`<tr>
                <td class="r">${i.id}</td><td>${beijing(i.timeMs)}</td><td>${lower(i.kind, 'INCIDENT_KIND_')}</td>
                <td>${i.payerWalletId} <span class="muted">${i.bankId}</span>${i.frozeWallet ? html` <span class="tag lead">frozen</span>` : ''}</td>
                <td>${[i.firstPayeeWalletId, i.secondPayeeWalletId].filter(Boolean).join(', ')}</td>
                <td class="r">${yuan(i.claimFen)}</td><td class="r">${yuan(i.fromEscrowFen)}</td><td class="r">${yuan(i.fromPayerFen)}</td>
                <td class="r">${yuan(i.fromGuaranteeFen)}</td><td class="r">${yuan(i.fromReserveFen)}</td><td class="r">${yuan(i.paidLaterFen)}</td>
                <td class=${'r' + (big(i.unpaidFen) > 0n ? ' bad' : '')}>${yuan(i.unpaidFen)}</td>
                <td>${lower(i.status, 'INCIDENT_STATUS_')}</td>
                <td class="muted">${i.firstPayment ? 'two signed payments' : 'payment + signed close'}, device ${hex(i.devicePublicKey, 4)}…</td>
              </tr>`,
            )}
          </tbody>
        </table>`
      : html`<p class="muted">none</p>`}`
}

function Campaigns({ r, error }) {
  if (!r) return html`<p class="muted">${error || 'loading…'}</p>`
  const cs = r.campaigns || []
  if (!cs.length) return html`<p class="muted" data-testid="campaigns-none">none</p>`
  return html`<table data-testid="campaigns">
    <thead><tr><th>campaign</th><th>sponsor</th><th>status</th><th class="r">funded</th><th class="r">enrolled</th><th class="r">packets granted</th><th class="r">spent</th><th class="r">refunded</th><th class="r">reclaimed</th><th class="r">in escrow</th><th class="r">unspent</th><th>spending window (UTC+8)</th></tr></thead>
    <tbody>
      ${cs.map(({ campaign: c, bankId }) => html`<tr data-campaign=${c.id}>
        <td><b>${c.id}</b> <span class="muted">${c.title || ''}</span></td><td>${c.sponsorWalletId} <span class="muted">${bankId}</span></td>
        <td>${lower(c.status, 'CAMPAIGN_STATUS_')}</td><td class="r">${yuan(c.fundedFen)}</td><td class="r">${c.enrolled || 0}</td>
        <td class="r">${num(c.granted) - num(c.forfeited)} of ${c.packetCount || 0}</td><td class="r">${yuan(c.spentFen)}</td>
        <td class="r">${yuan(big(c.refundedToHolderFen) + big(c.refundedToSponsorFen))}</td><td class="r">${yuan(c.reclaimedFen)}</td>
        <td class="r">${yuan(c.escrowFen)}</td><td class="r">${yuan(c.liveFen)}</td>
        <td>${beijing(c.spendStartMs, false)} – ${beijing(c.spendEndMs, false)}</td>
      </tr>`)}
    </tbody>
  </table>`
}

// Offline shows, per bank, its wallets' purses and its guarantee cover,
// then the payees of the payments it certified and who paid them (docs/
// offline.md, "Who pays"): paid out = escrow + payers + guarantee +
// reserve + paid later; owed = paid out + unpaid (what the bank still owes).
function Offline({ r, error }) {
  if (!r) return html`<p class="muted">${error || 'loading…'}</p>`
  const banks = r.banks || []
  const cell = (b, key, fen, bad) =>
    html`<td class=${'r' + (bad ? ' bad' : '')} data-testid=${`offline-${b.bankId}-${key}`} data-fen=${big(fen).toString()}>${yuan(fen)}</td>`
  return html`<p><b data-testid="offline-outstanding" data-fen=${big(r.escrowFen).toString()}>${yuan(r.escrowFen)}</b> outstanding in purses</p>
    <h3>Purses and guarantee cover <span class="sub">exposure: purses until their deadline; cover needed: the genesis ratio of it</span></h3>
    <table data-testid="offline">
      <thead><tr><th>bank</th><th class="r">open purses</th><th class="r">closed</th><th class="r">expired</th><th class="r">outstanding</th><th class="r">loaded</th><th class="r">returned</th><th class="r">exposure</th><th class="r">guarantee</th><th class="r">cover needed</th></tr></thead>
      <tbody>
        ${banks.map((b) => html`<tr data-bank=${b.bankId}>
          <td><b>${b.bankId}</b></td><td class="r">${b.openPurses || 0}</td><td class="r">${b.closedPurses || 0}</td><td class="r">${b.expiredPurses || 0}</td>
          ${cell(b, 'outstanding', b.escrowFen)}${cell(b, 'loaded', b.loadedFen)}${cell(b, 'returned', b.returnedFen)}
          ${cell(b, 'exposure', b.exposureFen)}${cell(b, 'guarantee-held', b.guaranteeHeldFen, big(b.guaranteeHeldFen) < big(b.coverNeededFen))}${cell(b, 'cover-needed', b.coverNeededFen)}
        </tr>`)}
      </tbody>
    </table>
    <h3>Who paid the payees <span class="sub">payments its purses made; what the bank still owes is unpaid, paid by the ledger as soon as the bank holds money</span></h3>
    <table data-testid="offline-paid">
      <thead><tr><th>bank</th><th class="r">payments</th><th class="r">owed</th><th class="r">paid out</th><th class="r">from escrow</th><th class="r">from payers</th><th class="r">from guarantee</th><th class="r">from reserve</th><th class="r">paid later</th><th class="r">unpaid</th><th class="r">incidents</th><th class="r">payers' debt</th></tr></thead>
      <tbody>
        ${banks.map((b) => html`<tr data-bank=${b.bankId}>
          <td><b>${b.bankId}</b></td><td class="r">${b.payments || 0}</td>
          ${cell(b, 'owed', b.settledFen)}${cell(b, 'paid', b.paidFen)}${cell(b, 'escrow', b.fromEscrowFen)}${cell(b, 'payer', b.fromPayerFen)}
          ${cell(b, 'guarantee', b.guaranteeFen)}${cell(b, 'reserve', b.fromReserveFen)}${cell(b, 'later', b.paidLaterFen)}
          ${cell(b, 'unpaid', b.unpaidFen, big(b.unpaidFen) > 0n)}
          <td class="r" data-testid=${`offline-${b.bankId}-incidents`}>${b.incidents || 0}</td>${cell(b, 'debt', b.debtFen)}
        </tr>`)}
      </tbody>
    </table>`
}

render(html`<${App} />`, document.getElementById('app'))
