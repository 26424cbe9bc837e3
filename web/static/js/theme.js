// The colour theme: the system's (default), or light or dark chosen by hand.

const KEY = "mailtrap.theme";
const THEMES = ["system", "light", "dark"];
const LABELS = { system: "Theme: system", light: "Theme: light", dark: "Theme: dark" };

export function currentTheme() {
  try {
    const value = localStorage.getItem(KEY);
    return THEMES.includes(value) ? value : "system";
  } catch {
    return "system";
  }
}

/** Apply `theme` to the page (CSS reads data-theme; "system" leaves it to the browser). */
export function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === "system") delete root.dataset.theme;
  else root.dataset.theme = theme;
  try {
    localStorage.setItem(KEY, theme);
  } catch {
    // storage disabled: the choice lasts until reload
  }
  return theme;
}

/** Wire the toggle button: each press goes system -> light -> dark -> system. */
export function bindThemeButton(button) {
  const show = (theme) => {
    button.dataset.theme = theme;
    button.title = `${LABELS[theme]} (click to change)`;
    button.setAttribute("aria-label", LABELS[theme]);
  };
  show(applyTheme(currentTheme()));
  button.addEventListener("click", () => {
    const next = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
    show(applyTheme(next));
  });
}
