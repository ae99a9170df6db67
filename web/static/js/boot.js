// Tells the user when the page's modules could not load (the Content-Security-Policy allows no
// inline handler, so this lives in a file). A classic script, run while the page is parsed: the
// module script's error event (its own or an import's failure) fires after parsing, so the
// listener is already there.
"use strict";
(function () {
  var main = document.querySelector('script[type="module"][src="/static/js/main.js"]');
  if (!main) return;
  main.addEventListener("error", function () {
    var boot = document.getElementById("boot");
    if (boot) {
      boot.textContent = "页面文件加载失败，请刷新；如仍失败请联系管理员。The page could not load its files; reload, or ask the administrator.";
    }
  });
})();
