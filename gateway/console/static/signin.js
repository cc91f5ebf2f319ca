"use strict";
(() => {
  const form = document.getElementById("signin-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("api-key");
    TD.setKey(input.value.trim());
    input.value = "";
    const r = await TD.api("GET", "/v1/me");
    if (!r.ok) { sessionStorage.clear(); TD.flash("sign-in failed: " + TD.problem(r)); return; }
    location.assign(TD.isTrader(r.data.roles) ? "/ui/trader" : TD.isOps(r.data.roles) ? "/ui/operator" : "/ui/trader");
  });
})();
