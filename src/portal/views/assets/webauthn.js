// Portvakt: the WebAuthn ceremony of a security-key page. The page carries the
// options the gateway made (JSON in #webauthn-options) and a form with a hidden
// "credential" field; this asks the browser for the key, writes its answer into
// that field as JSON and submits the form. Nothing else runs on the page, and
// the gateway checks everything this sends.
(function () {
  "use strict";
  var data = document.getElementById("webauthn-options");
  var form = document.getElementById("webauthn-form");
  var button = document.getElementById("webauthn-start");
  var status = document.getElementById("webauthn-status");
  if (!data || !form || !button || !status || !window.PublicKeyCredential) {
    return;
  }
  var registering = form.getAttribute("data-ceremony") === "register";

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBytes(list) {
    return (list || []).map(function (credential) {
      var copy = Object.assign({}, credential);
      copy.id = toBytes(credential.id);
      return copy;
    });
  }

  function send(answer) {
    form.elements.credential.value = JSON.stringify(answer);
    form.submit();
  }

  function failed(error) {
    // What the browser said, for whoever looks (and the tests).
    status.setAttribute("data-error", String(error && (error.name + ": " + error.message)));
    status.textContent = status.getAttribute("data-failed");
    button.disabled = false;
  }

  function start() {
    button.disabled = true;
    status.textContent = "";
    var options = JSON.parse(data.textContent).publicKey;
    options.challenge = toBytes(options.challenge);
    if (registering) {
      options.user.id = toBytes(options.user.id);
      // webauthn-rs asks for credProtect opportunistically (not enforced);
      // Chromium refuses that policy for a non-resident key whose user
      // verification is only preferred, so the request goes without it.
      if (options.extensions) {
        delete options.extensions.credentialProtectionPolicy;
        delete options.extensions.enforceCredentialProtectionPolicy;
      }
      options.excludeCredentials = withBytes(options.excludeCredentials);
      navigator.credentials.create({ publicKey: options }).then(function (key) {
        send({
          id: key.id,
          rawId: toText(key.rawId),
          type: key.type,
          response: {
            attestationObject: toText(key.response.attestationObject),
            clientDataJSON: toText(key.response.clientDataJSON),
            transports: key.response.getTransports ? key.response.getTransports() : undefined
          },
          extensions: key.getClientExtensionResults()
        });
      }, failed);
    } else {
      options.allowCredentials = withBytes(options.allowCredentials);
      navigator.credentials.get({ publicKey: options }).then(function (key) {
        var handle = key.response.userHandle;
        send({
          id: key.id,
          rawId: toText(key.rawId),
          type: key.type,
          response: {
            authenticatorData: toText(key.response.authenticatorData),
            clientDataJSON: toText(key.response.clientDataJSON),
            signature: toText(key.response.signature),
            userHandle: handle ? toText(handle) : null
          },
          extensions: key.getClientExtensionResults()
        });
      }, failed);
    }
  }

  button.hidden = false;
  button.addEventListener("click", start);
})();
