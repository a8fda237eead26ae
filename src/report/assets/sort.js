// layerwise report: click a numeric column heading to sort its table (largest first, click
// again for smallest first). The tables read in channel order without it.
"use strict";
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headings = table.querySelectorAll("thead th");
  headings.forEach(function (th, column) {
    if (th.getAttribute("data-sort") !== "number") return;
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = th.textContent;
    th.textContent = "";
    th.appendChild(button);
    button.addEventListener("click", function () {
      var descending = th.getAttribute("aria-sort") !== "descending";
      headings.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var value = function (row) {
        var v = row.cells[column].getAttribute("data-v");
        return v === null ? -Infinity : parseFloat(v);
      };
      rows.sort(function (a, b) {
        var d = value(a) - value(b);
        if (d !== d) d = 0;
        return descending ? -d : d;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
