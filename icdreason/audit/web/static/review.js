// icdreason audit serve: keys, live code validation and the case timer. No inline script anywhere (the page's
// Content-Security-Policy forbids it); text from the server is only ever set with textContent.
"use strict";
(function () {
  const TEXT_INPUTS = ["text", "search", ""];
  const isTyping = (el) => el && (el.tagName === "TEXTAREA" ||
    (el.tagName === "INPUT" && TEXT_INPUTS.includes(el.getAttribute("type") || "")));
  let submitting = false;
  document.addEventListener("submit", () => { submitting = true; });

  function press(target) {
    if (target.tagName === "BUTTON") {
      target.click();
    } else if (target.tagName === "FIELDSET") {
      const panel = target.closest("details");
      if (panel) panel.open = true;
      (target.querySelector("input:checked") || target.querySelector("input")).focus();
    } else {
      target.focus();
      if (target.select) target.select();
    }
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || submitting) return;
    const el = ev.target;
    if (isTyping(el)) {
      if (ev.key === "Escape") {
        el.blur();
        ev.preventDefault();
      } else if (ev.key === "Tab" && !ev.shiftKey && el.dataset.first && el.value.trim() !== el.dataset.first) {
        el.value = el.dataset.first;  // Tab takes the first suggestion, as in the terminal
        check(el);
        ev.preventDefault();
      }
      return;
    }
    const reasons = document.getElementById("reasons");
    if (reasons && reasons.contains(el) && /^[1-9]$/.test(ev.key)) {
      const radio = reasons.querySelector(`input[data-reason="${ev.key}"]`);
      if (radio) {
        radio.checked = true;
        document.getElementById("reject-comment").focus();
        ev.preventDefault();
      }
      return;
    }
    if (ev.key.length !== 1) return;
    const target = Array.from(document.querySelectorAll("[data-key]"))
      .find((node) => node.dataset.key === ev.key.toLowerCase());
    if (target) {
      ev.preventDefault();
      press(target);
    }
  });

  const help = document.getElementById("help");
  const helpToggle = document.getElementById("help-toggle");
  if (help && helpToggle) helpToggle.addEventListener("click", () => { help.hidden = !help.hidden; });

  async function check(input) {
    const box = document.getElementById(input.dataset.status);
    const list = document.getElementById(input.dataset.list);
    const seq = (input.checkSeq = (input.checkSeq || 0) + 1);
    const query = input.value.trim();
    let data = {status: "empty", hint: "", suggestions: []};
    if (query.length >= 2) {
      const response = await fetch("/api/code?q=" + encodeURIComponent(query),
        {credentials: "same-origin", headers: {accept: "application/json"}});
      if (!response.ok) return;
      data = await response.json();
    }
    if (seq !== input.checkSeq) return;  // a newer keystroke is on its way
    box.textContent = data.hint;
    box.className = "codestatus " + data.status;
    list.replaceChildren();
    delete input.dataset.first;
    data.suggestions.forEach((s, i) => {
      if (i === 0) input.dataset.first = s.code;
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = s.code + (s.description ? "  " + s.description : "");
      button.addEventListener("click", () => { input.value = s.code; check(input); input.focus(); });
      item.append(button);
      list.append(item);
    });
  }

  for (const input of document.querySelectorAll("input[data-code]")) {
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => check(input), 120);
    });
    if (input.value.trim()) check(input);
  }

  const clock = document.getElementById("timer");
  if (clock) {
    const started = Date.now() - 1000 * Number(clock.dataset.elapsed || 0);
    const tick = () => {
      const s = Math.floor((Date.now() - started) / 1000);
      clock.textContent = s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    };
    setInterval(tick, 1000);
  }
})();
