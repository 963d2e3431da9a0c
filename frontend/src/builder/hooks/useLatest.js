import { useLayoutEffect, useRef } from "react";

// A ref that always holds the value of the last committed render. Callbacks that
// read it keep their identity (React Flow re-renders less) and never act on a
// stale value; it is updated before any event handler or effect of that render runs.
export default function useLatest(value) {
  const ref = useRef(value);
  useLayoutEffect(() => {
    ref.current = value;
  });
  return ref;
}
