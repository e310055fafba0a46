// send.mjs sends a fixed customer journey to a running custody server with
// the official Segment Node SDK, exactly as a Segment customer's backend
// would. It is driven by tests/e2e (TestSegmentNodeSDK).
//
// Usage:
//   node send.mjs --host http://127.0.0.1:PORT --write-key cus_... \
//                 --user-id USER --anonymous-id ANON [--burst]
// --burst makes every call at once instead of phase by phase.
// Every option can also come from the environment: CUSTODY_HOST,
// CUSTODY_WRITE_KEY, CUSTODY_USER_ID, CUSTODY_ANONYMOUS_ID.
//
// On success it prints one JSON object on stdout:
//   {"sent":[{"type","event","name","messageId"}...],"requests":N,"statuses":[200,...]}
// and exits 0. Any delivery failure (the SDK's 'error' event, a non-2xx
// response, an exception, a timeout) makes it exit 1 with the reason on stderr.
import { Analytics } from '@segment/analytics-node'
import { parseArgs } from 'node:util'

const { values: opts } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.CUSTODY_HOST },
    'write-key': { type: 'string', default: process.env.CUSTODY_WRITE_KEY },
    'user-id': { type: 'string', default: process.env.CUSTODY_USER_ID },
    'anonymous-id': { type: 'string', default: process.env.CUSTODY_ANONYMOUS_ID },
    burst: { type: 'boolean', default: false },
  },
})

for (const k of ['host', 'write-key', 'user-id', 'anonymous-id']) {
  if (!opts[k]) {
    console.error(`send.mjs: --${k} is required`)
    process.exit(2)
  }
}

const failures = []
const fail = (what) => {
  failures.push(what)
  console.error('send.mjs:', what)
}

// A hard deadline: the Go test has its own, but never hang a CI job.
const deadline = setTimeout(() => {
  console.error('send.mjs: timed out after 60s')
  process.exit(1)
}, 60_000)
deadline.unref()

process.on('unhandledRejection', (err) => {
  console.error('send.mjs: unhandled rejection:', err)
  process.exit(1)
})

const analytics = new Analytics({
  writeKey: opts['write-key'],
  host: opts.host,
  flushAt: 3,
  flushInterval: 200,
  maxRetries: 3,
  httpRequestTimeout: 20_000,
})

const statuses = []
analytics.on('error', (err) => {
  const reason = err && err.reason ? err.reason : err
  fail(`SDK error (${err && err.code}): ${reason && reason.message ? reason.message : String(reason)}`)
})
analytics.on('http_response', (res) => {
  statuses.push(res.status)
  if (res.status < 200 || res.status >= 300) {
    fail(`HTTP ${res.status} ${res.statusText} from ${res.url}`)
  }
})

const sent = []
// call makes one SDK call and resolves once the SDK reports it delivered
// (the batch holding it got a 2xx), recording its SDK-generated messageId.
const call = (method, params) =>
  new Promise((resolve) => {
    const label = params.event ?? params.name ?? method
    analytics[method](params, (err, ctx) => {
      if (err) {
        fail(`${method} ${label}: ${err && err.message ? err.message : String(err)}`)
      } else {
        const ev = ctx.event
        sent.push({ type: ev.type, event: ev.event ?? '', name: ev.name ?? '', messageId: ev.messageId })
      }
      resolve()
    })
  })

const userId = opts['user-id']
const anonymousId = opts['anonymous-id']

// The journey a real shop sends: anonymous browsing, the login identify
// that links the anonymousId to the userId, then activity of the
// identified user. Each phase is a list of calls.
const phases = [
  // 1. Anonymous browsing: only the anonymousId is known.
  [
    () => call('page', { anonymousId, category: 'Shop', name: 'Home', properties: { path: '/', referrer: 'https://search.example/' } }),
    () => call('track', {
      anonymousId,
      event: 'Product Viewed',
      properties: { product_id: 'sku-123', name: 'Espresso Machine', price: 249.5, currency: 'EUR' },
    }),
  ],
  // 2. Login.
  [
    () => call('identify', {
      userId,
      anonymousId,
      traits: { email: 'sdk.shopper@example.com', first_name: 'Ada', plan: 'pro', logins: 3 },
    }),
  ],
  // 3. The identified user shops.
  [
    () => call('track', {
      userId,
      event: 'Product Added',
      properties: { product_id: 'sku-123', quantity: 1, price: 249.5, cart_id: 'cart-9' },
    }),
    () => call('page', { userId, category: 'Shop', name: 'Checkout', properties: { path: '/checkout', url: 'https://shop.example/checkout' } }),
    () => call('track', {
      userId,
      event: 'Order Completed',
      properties: {
        order_id: 'ord-4711',
        total: 274.45,
        revenue: 249.5,
        shipping: 24.95,
        currency: 'EUR',
        products: [
          { product_id: 'sku-123', sku: 'ESP-1', name: 'Espresso Machine', price: 249.5, quantity: 1 },
          { product_id: 'sku-777', sku: 'BEAN-5', name: 'Coffee Beans', price: 0, quantity: 2 },
        ],
      },
      context: { ip: '203.0.113.7', locale: 'de-DE' },
    }),
    () => call('track', {
      userId,
      event: 'Coupon Applied',
      properties: { coupon_id: 'WELCOME10', discount: 10 },
      timestamp: new Date('2024-05-01T10:00:00Z'),
    }),
  ],
]

if (opts.burst) {
  // Everything at once: the SDK sends its batches (flushAt 3)
  // concurrently, so the server may commit the identified user's activity
  // before the anonymous browsing and the login that links them.
  await Promise.all(phases.flat().map((f) => f()))
} else {
  // Each phase delivered before the next starts, as when a person browses,
  // logs in and shops over minutes.
  for (const phase of phases) {
    await Promise.all(phase.map((f) => f()))
    if (failures.length > 0) process.exit(1) // later phases depend on it
  }
}

try {
  await analytics.closeAndFlush({ timeout: 30_000 })
} catch (err) {
  fail(`closeAndFlush: ${err && err.message ? err.message : String(err)}`)
}

const expected = 7
if (sent.length !== expected && failures.length === 0) {
  fail(`only ${sent.length} of ${expected} calls were confirmed delivered`)
}
if (statuses.length === 0 && failures.length === 0) {
  fail('no HTTP request was made')
}
if (failures.length > 0) {
  process.exit(1)
}
process.stdout.write(JSON.stringify({ sent, requests: statuses.length, statuses }) + '\n')
process.exit(0)
