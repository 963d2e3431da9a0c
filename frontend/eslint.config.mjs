// Lints the canvas and the build script. ESLint 10 counts JSX tag names as uses
// of the components they name, so no React plugin is needed for that; the hooks
// plugin checks the rules of hooks and effect dependencies. Formatting is left
// to Prettier (eslint-config-prettier turns off the rules it would fight).
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";

export default [
  js.configs.recommended,
  reactHooks.configs.flat.recommended,
  {
    files: ["src/**/*.{js,jsx}"],
    languageOptions: {
      ecmaVersion: "latest",
      sourceType: "module",
      parserOptions: { ecmaFeatures: { jsx: true } },
      globals: globals.browser,
    },
  },
  {
    files: ["*.mjs"],
    languageOptions: { globals: globals.node },
  },
  {
    rules: {
      "no-new-func": "error",
    },
  },
  prettier,
];
