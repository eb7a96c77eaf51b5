// Portvakt's overlay, added to the pages of apps that ask for it (`login.overlay`).
//
// A page's script signs in with `fetch`; the gateway holds the app's answer back
// and answers 401 with a `Portvakt-Challenge` header naming its challenge page.
// This script shows that page in a frame over the app. Once the second factor is
// passed there (the frame reaches /.portvakt/signed-in), it sends the app's call
// again with `Portvakt-Release: 1`, and the gateway answers that repeat with the
// app's withheld answer. The app's code receives it as the answer to its call.
//
// Calls made with XMLHttpRequest are held and repeated the same way. Where the
// frame cannot be shown (the app's CSP forbids frames), the browser goes to the
// challenge page itself and comes back; if the user closes it, the app gets the
// 401 it would have got without this script.
(() => {
  "use strict";

  const PREFIX = "/.portvakt/";
  const SIGNED_IN = "/.portvakt/signed-in";
  const send = window.fetch.bind(window);
  let open = null;

  // The challenge page named by a held login's answer, if this is one.
  function challengeOf(status, header) {
    if (status !== 401 || !header) return null;
    return header.startsWith(PREFIX) ? header : null;
  }

  // Shows the challenge in a frame; resolves true once it is passed, false if the
  // user closes the frame.
  function overlay(challenge) {
    if (open) return open;
    open = new Promise((resolve) => {
      const shade = document.createElement("div");
      shade.setAttribute("data-portvakt-overlay", "");
      shade.style.cssText =
        "position:fixed;inset:0;z-index:2147483647;display:flex;align-items:center;" +
        "justify-content:center;background:rgba(0,0,0,.45)";
      const frame = document.createElement("iframe");
      frame.title = "Portvakt";
      frame.src = challenge;
      frame.style.cssText =
        "width:min(30rem,94vw);height:min(44rem,92vh);border:0;border-radius:10px;" +
        "background:#fff;box-shadow:0 8px 32px rgba(0,0,0,.35)";
      const close = document.createElement("button");
      close.type = "button";
      close.textContent = "\u00d7";
      close.setAttribute("aria-label", "Close");
      close.style.cssText =
        "position:absolute;top:1rem;right:1rem;font-size:1.5rem;border:0;" +
        "background:#fff;border-radius:50%;width:2.5rem;height:2.5rem;cursor:pointer";

      const finish = (passed) => {
        document.removeEventListener("securitypolicyviolation", blocked);
        shade.remove();
        open = null;
        resolve(passed);
      };
      // The app's CSP refused the frame: finish on the gateway's own page.
      const blocked = (event) => {
        if (/^(frame|child|default)-src/.test(event.effectiveDirective)) {
          window.location.assign(challenge);
        }
      };
      document.addEventListener("securitypolicyviolation", blocked);
      close.addEventListener("click", () => finish(false));
      frame.addEventListener("load", () => {
        let at;
        try {
          at = frame.contentWindow.location;
        } catch (_) {
          return; // not same-origin: nothing of ours
        }
        // The frame's first, empty document (about:blank) is not a step.
        if (at.origin !== window.location.origin) return;
        const path = at.pathname;
        if (path === SIGNED_IN) {
          finish(true);
        } else if (!path.startsWith(PREFIX)) {
          // A link of the challenge led back into the app: go there for real.
          window.location.assign(at.href);
        }
      });
      shade.append(frame, close);
      document.body.append(shade);
    });
    return open;
  }

  window.fetch = async function portvaktFetch(input, init) {
    const request = new Request(input, init);
    // Kept before the first send, which uses the body up.
    const repeat = request.clone();
    const response = await send(request);
    const challenge = challengeOf(response.status, response.headers.get("Portvakt-Challenge"));
    if (!challenge || !(await overlay(challenge))) return response;
    const headers = new Headers(repeat.headers);
    headers.set("Portvakt-Release", "1");
    return send(new Request(repeat, { headers }));
  };

  // XMLHttpRequest: the held answer never reaches the app's handlers (ours are
  // added first, in the constructor, and stop the event); once the factor is
  // passed, the same object sends the call again with `Portvakt-Release`, and the
  // app's handlers see that answer, as if it were the first. Closing the overlay
  // hands them the held one. A synchronous call is left alone.
  const NativeXHR = window.XMLHttpRequest;
  const EVENTS = ["readystatechange", "loadstart", "progress", "load", "loadend", "error", "abort", "timeout"];
  class PortvaktXHR extends NativeXHR {
    constructor() {
      super();
      this._portvakt = { call: null, holding: false };
      for (const type of EVENTS) {
        this.addEventListener(type, (event) => this._portvaktSees(event));
      }
    }

    open(method, url, async = true, user, password) {
      this._portvakt.call = { method, url, async, user, password, headers: [], repeated: false };
      return super.open(method, url, async, user, password);
    }

    setRequestHeader(name, value) {
      this._portvakt.call?.headers.push([name, value]);
      return super.setRequestHeader(name, value);
    }

    send(body) {
      if (this._portvakt.call) this._portvakt.call.body = body;
      return super.send(body);
    }

    _portvaktSees(event) {
      const held = this._portvakt;
      const call = held.call;
      if (event.type === "readystatechange" && call && this.readyState >= 2) {
        if (!held.holding && !call.repeated && call.async) {
          const challenge = challengeOf(this.status, this.getResponseHeader("Portvakt-Challenge"));
          if (challenge) {
            held.holding = true;
            overlay(challenge).then((passed) => this._portvaktAfter(passed));
          }
        } else if (held.holding && call.repeated) {
          held.holding = false; // the repeat's answer: the app's from here on
        }
      }
      if (held.holding) event.stopImmediatePropagation();
    }

    _portvaktAfter(passed) {
      const held = this._portvakt;
      const call = held.call;
      call.repeated = true;
      if (!passed) {
        // The app gets the held answer after all.
        held.holding = false;
        for (const type of ["readystatechange", "load", "loadend"]) {
          this.dispatchEvent(type === "readystatechange" ? new Event(type) : new ProgressEvent(type));
        }
        return;
      }
      super.open(call.method, call.url, true, call.user, call.password);
      for (const [name, value] of call.headers) super.setRequestHeader(name, value);
      super.setRequestHeader("Portvakt-Release", "1");
      super.send(call.body);
    }
  }
  window.XMLHttpRequest = PortvaktXHR;
})();
