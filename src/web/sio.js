// A small Socket.IO v5 client over Engine.IO v4, WebSocket transport only.
//
// Why our own: the page must stay a few files written for this project, and
// it only needs events, acks and the heartbeat. One SioSocket is one
// connection attempt; it never reconnects by itself, so the page decides
// when and how to retry (backoff, re-opening the room, re-offering).
//
// Engine.IO v4 frames (one per WebSocket text message):
//   0{open json}  1 close  2 ping  3 pong  4<socket.io packet>  6 noop
// Socket.IO v5 packets inside "4":
//   0 connect  1 disconnect  2 event  3 ack  4 connect error
//   e.g. 42["name",arg]  423["name",arg] (ack id 3)  433[true]
'use strict';

(function (global) {
  /** Extra slack on top of the server's pingInterval + pingTimeout. */
  const HEARTBEAT_SLACK_MS = 2000;
  /** How long the WebSocket + Socket.IO handshake may take. */
  const CONNECT_TIMEOUT_MS = 8000;

  /**
   * Build the WebSocket URL of a socket.io endpoint.
   * @param {string} server  http(s) or ws(s) base URL, e.g. "https://host:8443"
   * @param {Object<string,string>} query  handshake query parameters
   */
  function socketUrl(server, query) {
    const u = new URL(server);
    u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
    u.pathname = u.pathname.replace(/\/+$/, '') + '/socket.io/';
    u.search = '';
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    u.searchParams.set('EIO', '4');
    u.searchParams.set('transport', 'websocket');
    return u.toString();
  }

  /**
   * Parse the payload of an Engine.IO "4" message as a Socket.IO packet.
   * Returns {type, id, data} or null when it is not for the main namespace.
   */
  function parsePacket(s) {
    const type = Number(s[0]);
    let i = 1;
    if (s[i] === '/') {
      // A namespace other than "/" (we only use the main one).
      const comma = s.indexOf(',', i);
      const nsp = comma < 0 ? s.slice(i) : s.slice(i, comma);
      if (nsp !== '/') return null;
      i = comma < 0 ? s.length : comma + 1;
    }
    let id = null;
    const start = i;
    while (i < s.length && s[i] >= '0' && s[i] <= '9') i++;
    if (i > start) id = Number(s.slice(start, i));
    let data;
    if (i < s.length) {
      try {
        data = JSON.parse(s.slice(i));
      } catch (e) {
        return null;
      }
    }
    return { type, id, data };
  }

  /**
   * One Socket.IO connection. Callbacks:
   *   onconnect()         the namespace is connected (events may flow)
   *   onclose(reason)     the connection is gone for good (called once)
   */
  class SioSocket {
    constructor(server, query) {
      this.url = socketUrl(server, query);
      this.handlers = new Map();
      this.acks = new Map();
      this.nextAck = 0;
      this.connected = false;
      this.closed = false;
      this.onconnect = null;
      this.onclose = null;
      this.heartbeatMs = 25000 + 20000 + HEARTBEAT_SLACK_MS;
      this.watchdog = null;
      this.lastPacketAt = Date.now();
      this.ws = new WebSocket(this.url);
      this.connectTimer = setTimeout(() => this.close('connect timeout'), CONNECT_TIMEOUT_MS);
      this.ws.onmessage = (ev) => this._frame(ev.data);
      this.ws.onclose = () => this._gone('transport close');
      this.ws.onerror = () => this._gone('transport error');
    }

    /** Listen to a server event; the handler gets the event's arguments. */
    on(event, fn) {
      this.handlers.set(event, fn);
    }

    /** Send an event without an acknowledgement. */
    emit(event, ...args) {
      this._send('2' + JSON.stringify([event, ...args]));
    }

    /**
     * Send an event and wait for the server's acknowledgement, resolving to
     * its argument array; rejects on timeout or when the socket closes.
     */
    emitWithAck(event, args, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (!this.connected) {
          reject(new Error('not connected'));
          return;
        }
        const id = this.nextAck++;
        const timer = setTimeout(() => {
          this.acks.delete(id);
          reject(new Error('no answer from the server'));
        }, timeoutMs);
        this.acks.set(id, { resolve, reject, timer });
        this._send('2' + id + JSON.stringify([event, ...args]));
      });
    }

    /** Leave politely (Socket.IO disconnect) and close the transport. */
    close(reason) {
      if (this.closed) return;
      if (this.connected) this._send('1');
      try {
        this.ws.close();
      } catch (e) {
        /* already closing */
      }
      this._gone(reason || 'client close');
    }

    /** Send one Socket.IO packet (without the Engine.IO "4" prefix). */
    _send(packet) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send('4' + packet);
    }

    _frame(text) {
      if (typeof text !== 'string' || text.length === 0) return;
      this.lastPacketAt = Date.now();
      switch (text[0]) {
        case '0': {
          // Engine.IO open: learn the heartbeat, then connect namespace "/".
          try {
            const open = JSON.parse(text.slice(1));
            if (open.pingInterval && open.pingTimeout) {
              this.heartbeatMs = open.pingInterval + open.pingTimeout + HEARTBEAT_SLACK_MS;
            }
          } catch (e) {
            /* keep defaults */
          }
          this._startWatchdog();
          this.ws.send('40');
          break;
        }
        case '2':
          this.ws.send('3' + text.slice(1));
          break;
        case '1':
          this.close('server close');
          break;
        case '4':
          this._packet(text.slice(1));
          break;
        default:
          break; // pong / noop / upgrade: nothing to do
      }
    }

    _packet(s) {
      const p = parsePacket(s);
      if (!p) return;
      if (p.type === 0) {
        clearTimeout(this.connectTimer);
        this.connected = true;
        if (this.onconnect) this.onconnect();
      } else if (p.type === 1) {
        this.close('server disconnect');
      } else if (p.type === 4) {
        this.close('connect refused');
      } else if (p.type === 2 && Array.isArray(p.data) && typeof p.data[0] === 'string') {
        const fn = this.handlers.get(p.data[0]);
        if (fn) {
          try {
            fn(...p.data.slice(1));
          } catch (e) {
            console.error('handler for', p.data[0], 'failed:', e);
          }
        }
      } else if (p.type === 3 && p.id !== null) {
        const pending = this.acks.get(p.id);
        if (pending) {
          this.acks.delete(p.id);
          clearTimeout(pending.timer);
          pending.resolve(Array.isArray(p.data) ? p.data : []);
        }
      }
    }

    // The server pings every pingInterval; if nothing at all arrives for
    // pingInterval + pingTimeout the connection is dead even if the browser
    // has not noticed (a half-open TCP connection after a network change).
    _startWatchdog() {
      clearInterval(this.watchdog);
      this.watchdog = setInterval(() => {
        if (Date.now() - this.lastPacketAt > this.heartbeatMs) this.close('heartbeat lost');
      }, 1000);
    }

    _gone(reason) {
      if (this.closed) return;
      this.closed = true;
      this.connected = false;
      clearTimeout(this.connectTimer);
      clearInterval(this.watchdog);
      for (const { reject, timer } of this.acks.values()) {
        clearTimeout(timer);
        reject(new Error('connection closed'));
      }
      this.acks.clear();
      this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
      if (this.onclose) this.onclose(reason);
    }
  }

  global.SioSocket = SioSocket;
  global.sioInternals = { socketUrl, parsePacket };
})(typeof window !== 'undefined' ? window : globalThis);
