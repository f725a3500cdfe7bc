// MathJax 3 configuration for pymdownx.arithmatex (generic mode): \( ... \) inline, \[ ... \] display.
// MathJax itself is bundled with the site (javascripts/mathjax/, copied from the docs extra's
// django-static-mathjax package by docs/scripts/hooks.py): formulas render with no network.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// Material emits document$ on the first page load and after each instant navigation. MathJax's
// own startup typesets the first page; a second pass then that clears the output cache drops the
// CHTML font styles and leaves every formula blank (seen in headless Chromium), so the first
// emission is skipped and later ones typeset the new content without clearing that cache.
let jaxlossFirstPage = true;
document$.subscribe(() => {
  if (jaxlossFirstPage) {
    jaxlossFirstPage = false;
    return;
  }
  window.MathJax.startup.promise.then(() => {
    window.MathJax.typesetClear();
    window.MathJax.texReset();
    return window.MathJax.typesetPromise();
  });
});
