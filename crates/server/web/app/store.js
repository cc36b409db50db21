// What the app keeps, in the browser's IndexedDB: accounts (their keys as non-extractable
// CryptoKeys, which IndexedDB stores as keys, not bytes) and the PIN's check value.

const DB = "latchkey-token";
const VERSION = 1;

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

let opened = null;

function db() {
  if (!opened) {
    const r = indexedDB.open(DB, VERSION);
    r.onupgradeneeded = () => {
      const d = r.result;
      if (!d.objectStoreNames.contains("accounts")) d.createObjectStore("accounts", { keyPath: "id" });
      if (!d.objectStoreNames.contains("meta")) d.createObjectStore("meta");
    };
    opened = request(r);
  }
  return opened;
}

async function tx(store, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(store, mode);
    let result;
    Promise.resolve(fn(t.objectStore(store))).then((v) => (result = v), reject);
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error("storage transaction aborted"));
  });
}

export async function accounts() {
  const all = await tx("accounts", "readonly", (s) => request(s.getAll()));
  return all.sort((a, b) => a.registeredAt - b.registeredAt);
}

export function putAccount(account) {
  return tx("accounts", "readwrite", (s) => request(s.put(account)));
}

export function deleteAccount(id) {
  return tx("accounts", "readwrite", (s) => request(s.delete(id)));
}

export function getMeta(key) {
  return tx("meta", "readonly", (s) => request(s.get(key)));
}

export function putMeta(key, value) {
  return tx("meta", "readwrite", (s) => request(s.put(value, key)));
}

/// Counts one PIN attempt before it is checked, in one transaction, so closing the app in the
/// middle of a check never gives a free attempt. Returns the new count.
export function countPinAttempt() {
  return tx("meta", "readwrite", async (s) => {
    const n = ((await request(s.get("pinFailures"))) || 0) + 1;
    await request(s.put(n, "pinFailures"));
    return n;
  });
}

/// Deletes everything the app keeps: accounts, keys, PIN. Caches of the app's own files
/// (the service worker's) hold nothing personal and stay, so the app still opens offline.
export async function wipe() {
  if (opened) {
    (await opened).close();
    opened = null;
  }
  await new Promise((resolve, reject) => {
    const r = indexedDB.deleteDatabase(DB);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
    r.onblocked = () => resolve();
  });
  try {
    localStorage.clear();
    sessionStorage.clear();
  } catch {
    // storage not available: nothing kept there either
  }
}

/// Asks the browser not to evict the app's data under storage pressure.
export async function persist() {
  try {
    if (navigator.storage && navigator.storage.persist) await navigator.storage.persist();
  } catch {
    // best effort: browsers decide
  }
}
