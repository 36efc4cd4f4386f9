/**
 * The ops page's script: signs in with the admin token (kept in session storage), then shows
 * the queues, each dead-letter queue's dead letters with redrive and purge, the delivery rates
 * of the last hour and the subscriptions in poor health, refreshed every two seconds. Data is
 * only ever put on the page as text (textContent, attributes), never parsed as HTML.
 */

const TOKEN_KEY = 'dispatcher-ops-admin-token';
const REFRESH_MS = 2000;
/** A call that takes longer fails, and the next refresh tries again. */
const CALL_TIMEOUT_MS = 15_000;
const DEAD_LETTERS_SHOWN = 50;
const SUBSCRIPTIONS_SHOWN = 50;
const RATE_MINUTES = 60;
const SVG = 'http://www.w3.org/2000/svg';

/** An answer other than 2xx, with the problem's detail as its message. */
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const $ = (id) => {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found;
};

/**
 * An element with attributes and children; strings become text nodes. Attributes set to
 * undefined or false are left out.
 */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return node;
}

/** A table's head: one column header per label; a label `[text, class]` gets that class. */
function head(...labels) {
  return el(
    'thead',
    {},
    el(
      'tr',
      {},
      labels.map((label) =>
        Array.isArray(label)
          ? el('th', { scope: 'col', class: label[1] }, label[0])
          : el('th', { scope: 'col' }, label),
      ),
    ),
  );
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const timeOfDay = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
const dayAndTime = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});
const clockTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** Today's times as a time of day, older ones with their day; the exact instant in `datetime` and on hover. */
function timeEl(iso, format) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return el('span', {}, String(iso));
  const shown = format ?? (date.toDateString() === new Date().toDateString() ? timeOfDay : dayAndTime);
  return el('time', { datetime: iso, title: iso }, shown.format(date));
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

const code = (text) => el('code', {}, text);
const ref = (text) => (text === undefined ? el('span', { class: 'muted' }, '–') : code(text));
const line = (...children) => el('div', { class: 'line' }, ...children);

// ── The session ────────────────────────────────────────────────────────────────────────────

let token;
/** Bumped at each sign-in and sign-out: answers for an older session are dropped. */
let session = 0;
let timer;
let refreshing = false;
let refreshAgain = false;

async function api(method, path, body) {
  const headers = { accept: 'application/json, application/problem+json', authorization: `Bearer ${token}` };
  const init = { method, headers, cache: 'no-store', signal: AbortSignal.timeout(CALL_TIMEOUT_MS) };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text === '' ? null : JSON.parse(text);
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = data?.detail ?? data?.title ?? `HTTP ${response.status}`;
    throw new ApiError(response.status, detail);
  }
  return data;
}

/** The message to show for a failed call. */
function failure(error) {
  if (error instanceof ApiError) return error.message;
  return `the dispatcher did not answer (${error instanceof Error ? error.message : String(error)})`;
}

function showSignIn(message) {
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message ?? '';
  const input = $('token');
  input.value = '';
  input.focus();
}

function signOut(message) {
  session += 1;
  token = undefined;
  clearTimeout(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  clearDashboard();
  showSignIn(message);
}

/** Tries `candidate`: on success opens the dashboard with it, on a 401 shows why and the form again. */
async function signIn(candidate, { focus }) {
  token = candidate;
  const mine = ++session;
  $('sign-in-error').textContent = '';
  let queues;
  try {
    queues = await api('GET', '/v1/admin/queues');
  } catch (error) {
    if (mine !== session) return;
    token = undefined;
    if (error instanceof ApiError && error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(`The dispatcher refused that token: ${error.message}`);
    } else {
      $('sign-in-error').textContent = failure(error);
    }
    return;
  }
  if (mine !== session) return;
  sessionStorage.setItem(TOKEN_KEY, candidate);
  $('sign-in').hidden = true;
  $('dashboard').hidden = false;
  $('sign-out').hidden = false;
  $('sign-in-error').textContent = '';
  renderQueues(queues.data);
  if (focus) $('queues-heading').focus();
  await refresh();
}

// ── Refreshing ─────────────────────────────────────────────────────────────────────────────

/** Fetches everything the page shows; runs every REFRESH_MS and after each action. */
async function refresh() {
  if (token === undefined) return;
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  clearTimeout(timer);
  const mine = session;
  try {
    const queues = await api('GET', '/v1/admin/queues');
    if (mine !== session) return;
    renderQueues(queues.data);
    const dlqs = queues.data.filter((q) => q.kind === 'dead-letter');
    await Promise.all([
      ...dlqs.map((q) => refreshDeadLetterQueue(q, mine)),
      refreshSubscriptions('failing', mine),
      refreshSubscriptions('disabled', mine),
      refreshRates(mine),
    ]);
    if (mine !== session) return;
    setUpdated(`Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} seconds.`);
  } catch (error) {
    if (mine !== session) return;
    if (error instanceof ApiError && error.status === 401) {
      signOut(`Signed out: ${error.message}`);
      return;
    }
    setUpdated(`Not updated: ${failure(error)}. Trying again…`, true);
  } finally {
    refreshing = false;
    // Signed in (perhaps again, while this ran): keep one refresh loop going.
    if (token !== undefined) {
      const soon = refreshAgain;
      refreshAgain = false;
      timer = setTimeout(() => void refresh(), soon ? 0 : REFRESH_MS);
    }
  }
}

function setUpdated(text, failed = false) {
  const updated = $('updated');
  updated.textContent = text;
  updated.classList.toggle('error', failed);
}

/** Keeps each rendered section's last data, so an unchanged answer leaves the page alone. */
const rendered = new Map();

function changed(key, data) {
  const json = JSON.stringify(data);
  if (rendered.get(key) === json) return false;
  rendered.set(key, json);
  return true;
}

function clearDashboard() {
  rendered.clear();
  panels.clear();
  lastRates = undefined;
  $('queues').tBodies[0]?.replaceChildren();
  for (const id of [
    'dead-letter-queues',
    'rates-chart',
    'rates-summary',
    'rates-table',
    'failing',
    'disabled',
  ]) {
    $(id).replaceChildren();
  }
  setUpdated('');
}

// ── Queues ─────────────────────────────────────────────────────────────────────────────────

function renderQueues(queues) {
  for (const q of queues) if (q.kind === 'dead-letter') panelFor(q).update(q);
  if (!changed('queues', queues)) return;
  const rows = queues.map((q) => {
    const attention = q.kind === 'dead-letter' && q.visible > 0;
    return el(
      'tr',
      { 'data-queue': q.name, class: attention ? 'attention' : undefined },
      el(
        'th',
        { scope: 'row' },
        code(q.name),
        attention ? el('span', { class: 'badge' }, 'dead letters') : undefined,
      ),
      el(
        'td',
        {},
        q.kind === 'dead-letter'
          ? [line('dead-letter'), line(el('span', { class: 'muted' }, `redrives to ${q.redrivesTo ?? '–'}`))]
          : 'work',
      ),
      el('td', { class: 'num visible' }, q.visible),
      el('td', { class: 'num in-flight' }, q.inFlight),
      el('td', { class: 'num delayed' }, q.delayed),
      el('td', { class: 'num oldest' }, age(q.oldestAgeSeconds)),
    );
  });
  $('queues').tBodies[0]?.replaceChildren(...rows);
}

// ── Dead-letter queues ─────────────────────────────────────────────────────────────────────

/** Each dead-letter queue's section, made once and updated in place so focus stays put. */
const panels = new Map();

function panelFor(queue) {
  const existing = panels.get(queue.name);
  if (existing !== undefined) return existing;
  const name = queue.name;
  const id = `dlq-${name}`;
  const heading = el('h3', { id: `${id}-heading` }, code(name));
  const count = el('p', { class: 'count' });
  const redriveButton = el('button', { type: 'button', 'aria-label': `Redrive ${name}` }, 'Redrive');
  const purgeButton = el(
    'button',
    { type: 'button', class: 'danger', 'aria-label': `Purge ${name}` },
    'Purge',
  );
  const question = el('p', { id: `${id}-question` });
  const confirmButton = el('button', { type: 'button', class: 'danger' }, `Yes, purge ${name}`);
  const cancelButton = el('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const confirmBox = el(
    'div',
    { class: 'confirm', role: 'group', 'aria-labelledby': `${id}-question`, hidden: true },
    question,
    el('div', { class: 'actions' }, confirmButton, cancelButton),
  );
  const progressBar = el('progress', { id: `${id}-progress`, max: 1, value: 0 });
  const progressText = el('span');
  const cancelRedriveButton = el(
    'button',
    { type: 'button', class: 'secondary', 'aria-label': `Cancel the redrive of ${name}` },
    'Cancel redrive',
  );
  const progressBox = el(
    'div',
    { class: 'progress', hidden: true },
    el('label', { for: `${id}-progress` }, 'Redrive progress'),
    progressBar,
    progressText,
    cancelRedriveButton,
  );
  const result = el('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const letters = el('div', { class: 'letters' });
  const section = el(
    'section',
    { class: 'dlq', id, 'aria-labelledby': `${id}-heading` },
    el(
      'div',
      { class: 'dlq-head' },
      el('div', {}, heading, count),
      el('div', { class: 'actions' }, redriveButton, purgeButton),
    ),
    confirmBox,
    progressBox,
    result,
    letters,
  );

  const panel = {
    queue,
    /** The redrive this page started and still reports on, by id. */
    watching: undefined,
    busy: false,
    running: undefined,
    update(q) {
      panel.queue = q;
      const empty = q.visible === 0;
      const more = q.inFlight + q.delayed > 0 ? ` (${q.inFlight + q.delayed} more in flight or delayed)` : '';
      count.textContent = empty
        ? `No dead letters in ${name}${more}.`
        : `${plural(q.visible, 'dead letter')} in ${name}${more}; a redrive moves them to ${q.redrivesTo ?? '–'}.`;
      setDisabled(redriveButton, empty || panel.busy || panel.running !== undefined);
      setDisabled(purgeButton, empty || panel.busy);
      if (empty && !confirmBox.hidden) closeConfirm(confirmBox.contains(document.activeElement));
    },
    say(text, failed = false) {
      result.textContent = text;
      result.classList.toggle('error', failed);
    },
    showRedrives(tasks) {
      const latest = tasks[0];
      const running = latest !== undefined && (latest.status === 'running' || latest.status === 'cancelling');
      panel.running = running ? latest : undefined;
      progressBox.hidden = !running;
      if (running) {
        const total = latest.toMove ?? latest.moved;
        progressBar.max = Math.max(total, 1);
        progressBar.value = latest.moved;
        progressText.textContent =
          `${latest.moved} of ${latest.toMove ?? '?'} moved to ${latest.destination}` +
          (latest.maxPerSecond === undefined ? '' : `, at most ${latest.maxPerSecond} a second`) +
          (latest.status === 'cancelling' ? ' (cancelling)' : '');
        setDisabled(cancelRedriveButton, latest.status === 'cancelling');
      }
      if (panel.watching !== undefined) {
        const task = tasks.find((t) => t.id === panel.watching);
        if (task === undefined || (task.status !== 'running' && task.status !== 'cancelling')) {
          panel.watching = undefined;
          if (task !== undefined) panel.say(redriveOutcome(task), task.status === 'failed');
        }
      }
      panel.update(panel.queue);
    },
    letters,
  };

  function openConfirm() {
    if (isDisabled(purgeButton)) return;
    question.textContent = `Purge ${plural(panel.queue.visible, 'message')} from ${name}? They are deleted for good; a purge cannot be undone.`;
    confirmBox.hidden = false;
    cancelButton.focus();
  }

  function closeConfirm(refocus = true) {
    confirmBox.hidden = true;
    if (refocus) purgeButton.focus();
  }

  async function run(action) {
    panel.busy = true;
    panel.update(panel.queue);
    try {
      await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        signOut(`Signed out: ${error.message}`);
        return;
      }
      panel.say(failure(error), true);
    } finally {
      panel.busy = false;
      panel.update(panel.queue);
      void refresh();
    }
  }

  redriveButton.addEventListener('click', () => {
    if (isDisabled(redriveButton)) return;
    panel.say('');
    void run(async () => {
      const task = await api('POST', `/v1/admin/dlq/${encodeURIComponent(name)}/redrive`);
      if (task.status === 'running' || task.status === 'cancelling') {
        panel.watching = task.id;
        panel.say(`Redriving ${plural(task.toMove ?? 0, 'message')} from ${name} to ${task.destination}…`);
        panel.showRedrives([task]);
      } else {
        panel.say(redriveOutcome(task), task.status === 'failed');
      }
    });
  });
  purgeButton.addEventListener('click', openConfirm);
  cancelButton.addEventListener('click', () => {
    closeConfirm();
    panel.say('Purge cancelled; nothing was deleted.');
  });
  confirmBox.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      closeConfirm();
      panel.say('Purge cancelled; nothing was deleted.');
    }
  });
  confirmButton.addEventListener('click', () => {
    closeConfirm();
    panel.say('');
    void run(async () => {
      const purged = await api('DELETE', `/v1/admin/dlq/${encodeURIComponent(name)}/messages`);
      panel.say(
        purged.purged === null
          ? `Purged ${name}.`
          : `Purged ${plural(purged.purged, 'message')} from ${name}.`,
      );
    });
  });
  cancelRedriveButton.addEventListener('click', () => {
    const task = panel.running;
    if (task === undefined || isDisabled(cancelRedriveButton)) return;
    panel.watching = task.id;
    void run(async () => {
      const cancelled = await api(
        'DELETE',
        `/v1/admin/dlq/${encodeURIComponent(name)}/redrives/${encodeURIComponent(task.id)}`,
      );
      panel.showRedrives([cancelled]);
    });
  });

  panels.set(name, panel);
  // Kept in the order the queues are listed.
  $('dead-letter-queues').append(section);
  panel.update(queue);
  return panel;
}

/** aria-disabled rather than disabled: the button keeps focus when it stops applying. */
function setDisabled(button, disabled) {
  if (disabled) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
}

const isDisabled = (button) => button.getAttribute('aria-disabled') === 'true';

function redriveOutcome(task) {
  const moved = plural(task.moved, 'message');
  switch (task.status) {
    case 'completed':
      return `Moved ${moved} from ${task.queue} to ${task.destination}.`;
    case 'cancelled':
      return `Redrive of ${task.queue} cancelled after moving ${moved} to ${task.destination}.`;
    case 'failed':
      return `Redrive of ${task.queue} failed after moving ${moved}: ${task.failureReason ?? 'no reason given'}.`;
    default:
      return `Redrive of ${task.queue}: ${task.status}, ${moved} moved.`;
  }
}

async function refreshDeadLetterQueue(queue, mine) {
  const panel = panelFor(queue);
  const name = encodeURIComponent(queue.name);
  const [letters, redrives] = await Promise.all([
    queue.visible > 0
      ? api('GET', `/v1/admin/dlq/${name}/messages?limit=${DEAD_LETTERS_SHOWN}`)
      : Promise.resolve({ data: [] }),
    api('GET', `/v1/admin/dlq/${name}/redrives`),
  ]);
  if (mine !== session) return;
  panel.showRedrives(redrives.data);
  if (changed(`letters:${queue.name}`, [letters.data, queue.visible])) {
    panel.letters.replaceChildren(...[deadLetterTable(queue, letters.data)].flat());
  }
}

function deadLetterTable(queue, letters) {
  // The count above says so when there are none.
  if (letters.length === 0) return [];
  const shown =
    queue.visible > letters.length ? `, the oldest ${letters.length} of ${queue.visible}` : `, oldest first`;
  const rows = letters.map((letter) =>
    el(
      'tr',
      { 'data-message': letter.messageId },
      el('td', {}, timeEl(letter.deadAt)),
      el('td', {}, el('span', { class: `kind ${letter.kind}` }, letter.kind)),
      el(
        'td',
        {},
        line(el('span', { class: 'label' }, 'event '), ref(letter.eventId)),
        letter.eventType === undefined ? undefined : line(el('span', { class: 'muted' }, letter.eventType)),
        letter.deliveryId === undefined
          ? undefined
          : line(el('span', { class: 'label' }, 'delivery '), code(letter.deliveryId)),
      ),
      el(
        'td',
        { class: 'subscription' },
        line(ref(letter.subscriptionId)),
        letter.url === undefined ? undefined : line(el('span', { class: 'url' }, letter.url)),
        letter.partnerId === undefined
          ? undefined
          : line(el('span', { class: 'label' }, 'partner '), code(letter.partnerId)),
      ),
      el('td', { class: 'num' }, letter.tries ?? '–'),
      el(
        'td',
        { class: 'reason' },
        line(letter.reason),
        letter.window === undefined
          ? undefined
          : line(el('span', { class: 'muted' }, `writes from ${letter.window.from} to ${letter.window.to}`)),
        letter.body === undefined ? undefined : line(code(letter.body)),
      ),
    ),
  );
  return el(
    'div',
    { class: 'scroll' },
    el(
      'table',
      { class: 'dead-letters' },
      el('caption', {}, `Dead letters in ${queue.name}${shown}`),
      head('Died', 'Kind', 'Event and delivery', 'Subscription, URL, partner', ['Tries', 'num'], 'Reason'),
      el('tbody', {}, rows),
    ),
  );
}

// ── Subscriptions ──────────────────────────────────────────────────────────────────────────

async function refreshSubscriptions(status, mine) {
  const page = await api('GET', `/v1/admin/subscriptions?status=${status}&limit=${SUBSCRIPTIONS_SHOWN}`);
  if (mine !== session || !changed(`subscriptions:${status}`, page)) return;
  $(status).replaceChildren(subscriptionTable(status, page));
}

function subscriptionTable(status, page) {
  if (page.data.length === 0) return el('p', { class: 'muted' }, `No ${status} subscriptions.`);
  const failing = status === 'failing';
  const rows = page.data.map((s) =>
    el(
      'tr',
      { 'data-subscription': s.id },
      el('th', { scope: 'row' }, code(s.id)),
      el('td', {}, code(s.partnerId)),
      el('td', { class: 'url-cell' }, el('span', { class: 'url' }, s.url ?? '(connection)')),
      failing
        ? el('td', {}, s.failingSince === undefined ? '–' : timeEl(s.failingSince))
        : el('td', {}, s.disabledReason ?? '–'),
      el('td', {}, timeEl(s.updatedAt)),
    ),
  );
  const more =
    page.next === null
      ? undefined
      : el('p', { class: 'muted' }, `Only the first ${page.data.length} are shown.`);
  return el(
    'div',
    {},
    el(
      'div',
      { class: 'scroll' },
      el(
        'table',
        { class: 'subscriptions' },
        el('caption', { class: 'visually-hidden' }, `${failing ? 'Failing' : 'Disabled'} subscriptions`),
        head('Subscription', 'Partner', 'URL', failing ? 'Failing since' : 'Why disabled', 'Updated'),
        el('tbody', {}, rows),
      ),
    ),
    more,
  );
}

// ── Delivery rates ─────────────────────────────────────────────────────────────────────────

let lastRates;
let chartWidth = 0;

async function refreshRates(mine) {
  const rates = await api('GET', `/v1/admin/delivery-rates?minutes=${RATE_MINUTES}`);
  if (mine !== session || !changed('rates', rates)) return;
  lastRates = rates.data;
  renderRates();
}

function renderRates() {
  const minutes = lastRates;
  if (minutes === undefined) return;
  const sum = (key) => minutes.reduce((n, m) => n + m[key], 0);
  const totals = {
    succeeded: sum('succeeded'),
    failed: sum('failed'),
    dead: sum('dead'),
    skipped: sum('skipped'),
  };
  $('rates-summary').textContent =
    `Last hour: ${totals.succeeded} succeeded, ${totals.failed} failed, ${totals.dead} dead` +
    (totals.skipped > 0 ? `, ${totals.skipped} skipped.` : '.');
  drawChart(minutes);
  const active = minutes.filter((m) => m.succeeded + m.failed + m.dead > 0);
  $('rates-table').replaceChildren(
    active.length === 0
      ? el('p', {}, 'No deliveries in the last hour.')
      : el(
          'table',
          {},
          el('caption', {}, 'Deliveries per minute in the last hour, minutes with any'),
          head('Minute', 'Succeeded', 'Failed', 'Dead'),
          el(
            'tbody',
            {},
            active.map((m) =>
              el(
                'tr',
                {},
                el('th', { scope: 'row' }, timeEl(m.minute, clockTime)),
                el('td', {}, m.succeeded),
                el('td', {}, m.failed),
                el('td', {}, m.dead),
              ),
            ),
          ),
        ),
  );
}

/** Stacked bars a minute each: succeeded at the bottom, then failed, then dead. */
function drawChart(minutes) {
  const box = $('rates-chart');
  const width = Math.max(box.clientWidth, 240);
  chartWidth = box.clientWidth;
  const height = 200;
  const pad = { left: 36, right: 8, top: 10, bottom: 24 };
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const peak = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed + m.dead));
  const top = niceCeiling(peak);
  const y = (n) => pad.top + plotHeight - (n / top) * plotHeight;
  const slot = plotWidth / Math.max(minutes.length, 1);
  const barWidth = Math.max(1, slot - Math.min(2, slot * 0.2));

  const chart = svg('svg', {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    class: 'chart-svg',
    focusable: 'false',
  });
  for (const tick of [0, top / 2, top]) {
    chart.append(
      svg('line', { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: 'grid' }),
      svg('text', { x: pad.left - 6, y: y(tick) + 4, class: 'axis', 'text-anchor': 'end' }, `${tick}`),
    );
  }
  minutes.forEach((m, i) => {
    const x = pad.left + i * slot;
    const group = svg('g', {});
    let base = 0;
    for (const key of ['succeeded', 'failed', 'dead']) {
      const n = m[key];
      if (n === 0) continue;
      group.append(
        svg('rect', {
          x: x.toFixed(2),
          y: y(base + n).toFixed(2),
          width: barWidth.toFixed(2),
          height: (y(base) - y(base + n)).toFixed(2),
          class: key,
        }),
      );
      base += n;
    }
    if (base > 0) {
      const title = svg('title');
      title.textContent = `${clockTime.format(new Date(m.minute))}: ${m.succeeded} succeeded, ${m.failed} failed, ${m.dead} dead`;
      group.prepend(title);
    }
    chart.append(group);
  });
  const labelled = [0, Math.floor(minutes.length / 2), minutes.length - 1];
  for (const [n, i] of labelled.entries()) {
    const m = minutes[i];
    if (m === undefined) continue;
    const anchor = n === 0 ? 'start' : n === 1 ? 'middle' : 'end';
    const x = n === 0 ? pad.left : n === 1 ? pad.left + (i + 0.5) * slot : width - pad.right;
    chart.append(
      svg(
        'text',
        { x: x.toFixed(2), y: height - 6, class: 'axis', 'text-anchor': anchor },
        clockTime.format(new Date(m.minute)),
      ),
    );
  }
  box.replaceChildren(chart);
}

/** An even y-axis top at or above `n` (2, 4, … 10, 20, 40, 60, 80, 100, 200, …): half of it is whole. */
function niceCeiling(n) {
  if (n <= 10) return Math.max(2, n + (n % 2));
  let step = 10;
  for (;;) {
    for (const f of [1, 2, 4, 6, 8]) if (f * step >= n) return f * step;
    step *= 10;
  }
}

// ── Start ──────────────────────────────────────────────────────────────────────────────────

function start() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const candidate = $('token').value.trim();
    if (candidate === '') {
      $('sign-in-error').textContent = 'Enter the admin token.';
      return;
    }
    void signIn(candidate, { focus: true });
  });
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  new ResizeObserver(() => {
    if ($('rates-chart').clientWidth !== chartWidth) renderRates();
  }).observe($('rates-chart'));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved === null) showSignIn();
  else void signIn(saved, { focus: false });
}

start();
