// Portvakt's overlay, added to the pages of apps that ask for it (`login.overlay`).
//
// A page's script signs in with `fetch`; the gateway holds the app's answer back
// and answers 401 with a `Portvakt-Challenge` header naming its challenge page.
// This script shows that page in a frame over the app. Once the second factor is
// passed there (the frame reaches /.portvakt/signed-in), it sends the app's call
// again with `Portvakt-Release: 1`, and the gateway answers that repeat with the
// app's withheld answer. The app's code receives it as the answer to its call.
//
// Where the frame cannot be shown (the app's CSP forbids frames, or the user
// closes it), the browser goes to the challenge page itself and comes back.
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

  // XMLHttpRequest cannot be answered twice: the app's code sees the 401. The
  // challenge is shown all the same; once it is passed, the app's next login goes
  // straight through.
  const xhrSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function portvaktSend(body) {
    this.addEventListener("load", () => {
      const challenge = challengeOf(this.status, this.getResponseHeader("Portvakt-Challenge"));
      if (challenge) overlay(challenge);
    });
    return xhrSend.call(this, body);
  };
})();
