// The definition as SAM deploys it, for the tests that run it: every
// ${Name} of statemachine/pipeline.asl.json substituted, and its states.

/** The definition's JSON text with every `${Name}` replaced by `subs[Name]`. */
export function substitute(text, subs) {
  return JSON.parse(text.replace(/\$\{(\w+)\}/g, (m, name) => {
    if (!(name in subs)) throw new Error(`no substitution for ${m}`);
    return String(subs[name]);
  }));
}

/** The Lambda ARN a `${<Name>FunctionArn}` stands for. */
export const functionArn = (name) => `arn:aws:lambda:us-east-1:123456789012:function:${name}`;

/** Every state of the definition, nested ones too: name -> state. */
export function allStates(def, into = {}) {
  for (const [name, s] of Object.entries(def.States)) {
    into[name] = s;
    if (s.ItemProcessor) allStates(s.ItemProcessor, into);
    if (s.Iterator) allStates(s.Iterator, into);
  }
  return into;
}
