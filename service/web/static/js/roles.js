// The operator roles the API knows (service/roles.py), least first, with what each may do: the navigation and the
// admin's user form read them here. The API still decides; a stale list here fails loudly (it refuses other roles).

export const ROLES = [
  ["viewer", "viewer: reads everything"],
  ["manager", "manager: drivers, assignments, reviews"],
  ["admin", "admin: also users, vehicles, webhooks"],
];

// A role allows what every role below it allows.
export function mayOpen(role, least) {
  const rank = (name) => ROLES.findIndex(([r]) => r === name);
  return rank(role) >= rank(least);
}
