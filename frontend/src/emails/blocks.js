// The email template's block editor: cards for headings, text, buttons, images,
// dividers, spacers and two columns, added, moved and removed in place. The
// blocks live as JSON in the form's text area (what is saved, and what the
// page shows without this script); every change writes it back and tells the
// preview. The cards' markup and words come from the page's <template>s.

function cardFields(card) {
  return [...card.querySelectorAll("[data-field]")].filter((input) => input.closest("[data-block]") === card);
}

function listOf(card, side) {
  return [...card.querySelectorAll(`[data-block-list="${side}"]`)].find(
    (list) => list.closest("[data-block]") === card,
  );
}

function readBlock(card) {
  const block = { type: card.dataset.block };
  for (const input of cardFields(card)) {
    const name = input.dataset.field;
    if ("number" in input.dataset) {
      if (input.value !== "") block[name] = Number.parseInt(input.value, 10);
    } else if (input.value !== "" || name === "text" || name === "label") {
      block[name] = input.value;
    }
  }
  if (block.type === "columns") {
    block.left = readList(listOf(card, "left"));
    block.right = readList(listOf(card, "right"));
  }
  return block;
}

function readList(list) {
  return [...list.children].filter((child) => child.dataset.block).map(readBlock);
}

function makeCard(editor, block) {
  const template = editor.querySelector(`template[data-block-template="${block.type}"]`);
  if (!template) return null;
  const card = template.content.firstElementChild.cloneNode(true);
  for (const input of cardFields(card)) {
    const value = block[input.dataset.field];
    if (value !== undefined && value !== null) input.value = String(value);
  }
  if (block.type === "columns") {
    fillList(editor, listOf(card, "left"), block.left || []);
    fillList(editor, listOf(card, "right"), block.right || []);
  }
  return card;
}

function fillList(editor, list, blocks) {
  list.replaceChildren();
  for (const block of blocks) {
    const card = block && typeof block === "object" ? makeCard(editor, block) : null;
    if (card) list.append(card);
  }
}

function blockEditor(editor) {
  if (editor.dataset.ready) return;
  const source = editor.querySelector("[data-blocks-json]");
  const root = editor.querySelector('[data-block-list="root"]');
  let blocks;
  try {
    blocks = JSON.parse(source.value || "[]");
  } catch {
    // Unreadable JSON stays in the text area, shown, so that nothing is lost.
    return;
  }
  if (!Array.isArray(blocks)) return;
  editor.dataset.ready = "1";
  for (const hidden of editor.querySelectorAll(".js-hidden")) hidden.hidden = true;
  fillList(editor, root, blocks);

  const write = () => {
    source.value = JSON.stringify(readList(root));
    document.body.dispatchEvent(new CustomEvent("lf:blocks-changed"));
  };

  editor.addEventListener("input", (event) => {
    if (event.target.closest("[data-block]")) write();
  });
  editor.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || !editor.contains(button)) return;
    if (button.dataset.add) {
      const side = button.closest("[data-side]");
      const list = side ? side.querySelector("[data-block-list]") : root;
      const card = makeCard(editor, { type: button.dataset.add });
      if (card && list) {
        list.append(card);
        card.querySelector("input, textarea")?.focus();
        write();
      }
      return;
    }
    const card = button.closest("[data-block]");
    if (!card) return;
    if (button.dataset.action === "up" && card.previousElementSibling) {
      card.previousElementSibling.before(card);
    } else if (button.dataset.action === "down" && card.nextElementSibling) {
      card.nextElementSibling.after(card);
    } else if (button.dataset.action === "remove") {
      card.remove();
    } else {
      return;
    }
    button.focus();
    write();
  });
}

export function blockEditors(root) {
  for (const editor of root.querySelectorAll("[data-block-editor]")) blockEditor(editor);
}
