// Runs before the page paints (loaded without defer): applies the theme chosen earlier, so no flash.
(function () {
  var theme = "auto";
  try { theme = localStorage.getItem("jh-theme") || "auto"; } catch (e) { /* storage blocked */ }
  document.documentElement.dataset.theme = theme;
})();
