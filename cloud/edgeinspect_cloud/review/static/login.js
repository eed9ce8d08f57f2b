// Shows the "not accepted" message after a failed sign-in (the page has no inline script).
if (new URL(window.location.href).searchParams.has("failed")) {
  document.getElementById("failed").hidden = false;
}
